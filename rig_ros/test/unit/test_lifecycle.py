"""Lifecycle: explore -> pretrain -> practise, kept in stage.json and resumed after a kill."""

import json

from factories import make_learner
import numpy as np
import pytest

from rig_ros.core.checkpoints import CheckpointError
from rig_ros.core.frames import FrameStore, FrameStoreConfig
from rig_ros.core.latent_versions import add_exploration, LatentVersions
from rig_ros.core.lifecycle import Lifecycle, LifecycleConfig, STAGE_FILE
from rig_ros.core.vae import VAEConfig
from rig_ros.core.vae_training import read_vae_checkpoint, VAEPretraining, VAEPretrainingConfig

CONFIG = LifecycleConfig(explore_frames=10, vae_steps=4)


def test_stages_move_forward_only_when_their_budget_is_done(tmp_path):
    lifecycle = Lifecycle(tmp_path, CONFIG)
    assert lifecycle.stage == 'explore' and not lifecycle.resumed
    assert (tmp_path / STAGE_FILE).is_file() and lifecycle.accepts_frames
    lifecycle.update(frames=9)
    assert not lifecycle.explore_done
    with pytest.raises(RuntimeError, match='exploration frames \\(9/10\\)'):
        lifecycle.start_pretraining()
    lifecycle.update(frames=10)
    lifecycle.start_pretraining()
    assert lifecycle.stage == 'pretrain' and not lifecycle.accepts_frames
    with pytest.raises(RuntimeError, match='VAE pretraining \\(0/4 steps\\)'):
        lifecycle.start_practice(1)
    lifecycle.update(vae_step=4)
    lifecycle.start_practice(vae_version=1)
    assert lifecycle.stage == 'practise' and lifecycle.vae_version == 1
    assert not lifecycle.accepts_transitions  # the exploration is not in the replay yet
    assert set(lifecycle.began) == {'explore', 'pretrain', 'practise'}


def test_every_stage_resumes_after_a_kill(tmp_path):
    lifecycle = Lifecycle(tmp_path, CONFIG)
    lifecycle.update(frames=12)
    # Killed after the frames were flushed but before the move: explore again, done at once.
    resumed = Lifecycle(tmp_path, CONFIG)
    assert resumed.resumed and resumed.stage == 'explore' and resumed.frames == 0
    resumed.update(frames=12)  # from the frame store's count
    resumed.start_pretraining()
    lifecycle = Lifecycle(tmp_path, CONFIG)
    assert lifecycle.stage == 'pretrain' and lifecycle.frames == 12
    lifecycle.update(vae_step=4)
    lifecycle.start_practice(1)
    lifecycle = Lifecycle(tmp_path, CONFIG)
    assert lifecycle.stage == 'practise' and lifecycle.vae_version == 1
    assert lifecycle.status()['waiting_for'] == 'the exploration to be encoded into the replay'


def test_replay_seeding_happens_once(tmp_path):
    lifecycle = Lifecycle(tmp_path, LifecycleConfig(vae_checkpoint='given.safetensors'))
    assert lifecycle.stage == 'practise'
    assert lifecycle.replay_seeding_due(stored=0)
    lifecycle.mark_replay_seeded()
    assert not lifecycle.replay_seeding_due(stored=0) and lifecycle.accepts_transitions
    assert Lifecycle(tmp_path, CONFIG).accepts_transitions

    # Killed after the learner saved the seeded replay, before the mark: the replay has it.
    other = tmp_path / 'other'
    lifecycle = Lifecycle(other, LifecycleConfig(vae_checkpoint='given.safetensors'))
    resumed = Lifecycle(other, CONFIG)
    assert not resumed.replay_seeded and not resumed.replay_seeding_due(stored=120)
    assert Lifecycle(other, CONFIG).accepts_transitions


def test_a_given_vae_skips_explore_and_pretrain(tmp_path):
    Lifecycle(tmp_path, CONFIG).update(frames=3)
    lifecycle = Lifecycle(tmp_path, LifecycleConfig(vae_checkpoint='vae.safetensors'))
    assert lifecycle.stage == 'practise' and 'explore' in lifecycle.began
    lifecycle.mark_replay_seeded()
    lifecycle.set_vae_version(3)
    # A run already practising keeps its stage and its record.
    again = Lifecycle(tmp_path, LifecycleConfig(vae_checkpoint='vae.safetensors'))
    assert again.stage == 'practise' and again.replay_seeded and again.vae_version == 3


def test_status_is_json_with_progress(tmp_path):
    lifecycle = Lifecycle(tmp_path, CONFIG)
    lifecycle.update(frames=5)
    status = json.loads(json.dumps(lifecycle.status()))
    assert status['stage'] == 'explore' and status['progress'] == 0.5
    assert status['frames'] == 5 and status['explore_frames'] == 10
    lifecycle.update(frames=10)
    lifecycle.start_pretraining()
    lifecycle.update(vae_step=1)
    assert lifecycle.status()['progress'] == 0.25
    saved = json.loads((tmp_path / STAGE_FILE).read_text())
    assert saved['stage'] == 'pretrain' and saved['frames'] == 10


def test_bad_records_and_budgets_are_refused(tmp_path):
    (tmp_path / STAGE_FILE).write_text('{"format_version": 1, "stage": "dance"}')
    with pytest.raises(CheckpointError, match='not a stage record'):
        Lifecycle(tmp_path, CONFIG)
    (tmp_path / STAGE_FILE).write_text('{trunc')
    with pytest.raises(CheckpointError):
        Lifecycle(tmp_path, CONFIG)
    with pytest.raises(ValueError, match='explore_frames'):
        LifecycleConfig(explore_frames=0)


def test_a_run_through_every_stage_survives_kills(tmp_path):
    """The learner's use of the pieces, with a kill -9 in each stage."""
    config = LifecycleConfig(explore_frames=12, vae_steps=4)
    frames_config = FrameStoreConfig(chunk_frames=5, flush_period_s=0)
    pretraining_config = VAEPretrainingConfig(
        vae=VAEConfig(image_size=48, batch_size=4), checkpoint_every=2)
    rng = np.random.default_rng(0)

    def start() -> tuple[Lifecycle, FrameStore]:
        lifecycle, store = Lifecycle(tmp_path, config), FrameStore(tmp_path, frames_config)
        lifecycle.update(frames=store.resume())
        return lifecycle, store

    def explore(lifecycle: Lifecycle, store: FrameStore, episode: int) -> None:
        for step in range(4):  # episodes of 3 steps
            store.append('robot_0', episode, step, rng.integers(0, 256, (84, 84, 3), np.uint8),
                         rng.uniform(-1, 1, 2) if step < 3 else None)
            lifecycle.update(frames=store.count)

    lifecycle, store = start()
    for episode in range(3):
        explore(lifecycle, store, episode)
    assert lifecycle.explore_done and store.stored == 10  # killed before the flush
    lifecycle, store = start()
    assert lifecycle.stage == 'explore' and not lifecycle.explore_done
    explore(lifecycle, store, 3)
    store.flush()
    lifecycle.start_pretraining()

    pretraining = VAEPretraining(tmp_path, store.images(), pretraining_config)
    lifecycle.update(vae_step=pretraining.run(3)['step'])  # killed at step 3
    lifecycle, store = start()
    assert lifecycle.stage == 'pretrain' and store.count == 14
    pretraining = VAEPretraining(tmp_path, store.images(), pretraining_config)
    assert pretraining.step == 2
    while not lifecycle.pretrain_done:
        lifecycle.update(vae_step=pretraining.run(1)['step'])
    pretraining.finish()
    lifecycle.start_practice(vae_version=1)

    learner, versions = make_learner(), LatentVersions()
    vae, version = read_vae_checkpoint(tmp_path)
    assert lifecycle.replay_seeding_due(learner.trainer.stored)
    added = add_exploration(learner.trainer, store.episodes(), vae, version, versions)
    assert added == 10  # 3 + 3 + 3 steps, and 1 of episode 2 (its tail died with the kill)
    learner.save(tmp_path)  # killed before the mark
    lifecycle, learner = Lifecycle(tmp_path, config), make_learner()
    learner.resume(tmp_path)
    assert not lifecycle.replay_seeding_due(learner.trainer.stored)
    assert lifecycle.accepts_transitions and learner.status()['stored'] == 10
