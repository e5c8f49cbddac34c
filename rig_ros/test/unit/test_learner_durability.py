"""Learner durability: episode files survive a kill, checkpoints prune them, resume is exact."""

from factories import episode, make_learner
import numpy as np
import pytest
import torch

from rig_ros.core import checkpoints
from rig_ros.core.learner import CHECKPOINT_FILE, EPISODES_DIR, Learner, REPLAY_FILE
from rig_ros.core.td3 import TD3Config


def replay_rows(learner: Learner) -> np.ndarray:
    state = learner.buffer.export()
    frames = int(state['frames'])
    return np.concatenate([state['obs'][:frames], state['action'][:frames]], axis=1)


def test_finished_episodes_survive_without_a_checkpoint(tmp_path):
    learner = make_learner()
    learner.record_episodes(tmp_path)
    for episode_id in range(3):
        for record in episode(episode_id, 6):
            learner.ingest('robot_0', record)
    for record in episode(3, 6)[:4]:  # unfinished: lost with the process
        learner.ingest('robot_0', record)
    assert len(list((tmp_path / EPISODES_DIR).glob('*.npz'))) == 3
    # "kill -9": nothing else is written. A new learner finds the three episodes.
    resumed = make_learner()
    assert resumed.resume(tmp_path)
    assert resumed.status()['stored'] == 18 and len(resumed.buffer) == 18
    np.testing.assert_array_equal(replay_rows(resumed), replay_rows(learner)[:21])


def test_checkpoint_prunes_covered_files_and_resume_adds_newer_ones(tmp_path):
    learner = make_learner()
    learner.record_episodes(tmp_path)
    for episode_id in range(3):
        for record in episode(episode_id, 6):
            learner.ingest('robot_0', record)
    while learner.train(100):
        pass
    learner.save(tmp_path)
    assert not list((tmp_path / EPISODES_DIR).glob('*.npz'))
    saved = checkpoints.load_checkpoint(tmp_path / CHECKPOINT_FILE)
    for episode_id in range(3, 5):  # after the checkpoint
        for record in episode(episode_id, 6):
            learner.ingest('robot_0', record)
    assert len(list((tmp_path / EPISODES_DIR).glob('*.npz'))) == 2

    resumed = make_learner()
    assert resumed.resume(tmp_path)
    assert resumed.updates == saved.metadata['updates'] == learner.updates
    assert resumed.status()['stored'] == 30
    np.testing.assert_array_equal(replay_rows(resumed), replay_rows(learner))
    # Optimiser state as saved (Adam moments and step counts).
    for name in ('actor_optimizer', 'critic_optimizer'):
        mine = getattr(resumed.agent, name).state_dict()['state']
        theirs = saved.optimizers[name]['state']
        assert set(mine) == {int(key) for key in theirs} or set(mine) == set(theirs)
        for key, value in mine.items():
            stored = theirs.get(key, theirs.get(str(key)))
            for field in ('exp_avg', 'exp_avg_sq', 'step'):
                assert torch.equal(torch.as_tensor(value[field]),
                                   torch.as_tensor(stored[field]))
    # Training goes on from there: more owed updates for the two new episodes.
    assert resumed.train(100) > 0


def test_unreadable_files_are_set_aside_and_reported(tmp_path):
    learner = make_learner()
    learner.record_episodes(tmp_path)
    for episode_id in range(2):
        for record in episode(episode_id, 5):
            learner.ingest('robot_0', record)
    files = sorted((tmp_path / EPISODES_DIR).glob('*.npz'))
    files[0].write_bytes(b'not a zip file')
    resumed = make_learner()
    assert resumed.resume(tmp_path)
    assert resumed.status()['stored'] == 5
    assert len(resumed.skipped_files) == 1 and 'cannot read' in resumed.skipped_files[0]
    assert files[0].with_suffix('.corrupt').is_file()


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'other_sizes'])
def test_a_corrupt_checkpoint_or_replay_is_a_clear_error(tmp_path, damage):
    learner = make_learner()
    for record in episode(0, 12):
        learner.ingest('robot_0', record)
    learner.train(100)
    learner.save(tmp_path)
    if damage == 'garbage':
        (tmp_path / CHECKPOINT_FILE).write_bytes(b'\x00' * 64)
        match = 'truncated|corrupt|not a rig_ros'
    elif damage == 'truncated':
        data = (tmp_path / REPLAY_FILE).read_bytes()
        (tmp_path / REPLAY_FILE).write_bytes(data[:len(data) // 2])
        match = 'cannot read'
    else:
        match = 'another run_dir'
    overrides = ({'td3': TD3Config(hidden_sizes=(8,), batch_size=8)}
                 if damage == 'other_sizes' else {})
    with pytest.raises(checkpoints.CheckpointError if damage != 'other_sizes' else ValueError,
                       match=match):
        make_learner(**overrides).resume(tmp_path)
