"""Learner core: ingestion checks, update ratio, weights, checkpoints and resume (no ROS)."""

import dataclasses
import functools

from factories import episode, make_learner as small_learner, save_vae, untrained_vae
import numpy as np
import pytest
import torch

from rig_ros.core.actor import GoalPolicy
from rig_ros.core.encoder import LATENT_VARIANCE_KEY, LatentEncoder
from rig_ros.core.hands import HandBox
from rig_ros.core.learner import Learner, LearnerConfig, load_vae_weights, resolve_checkpoint
from rig_ros.core.policy_runtime import decode_policy_weights
from rig_ros.core.replay import PRIOR_GOAL, RelabelConfig
from rig_ros.core.skew_fit import SkewFitConfig
from rig_ros.core.td3 import TD3Config

DIM = 4  # factories.episode's latent size
# The learners here pay two updates per stored transition.
make_learner = functools.partial(small_learner, updates_per_step=2)


def train_all(learner: Learner) -> int:
    """Pay every owed update, broadcasting when due; return how many ran."""
    total = 0
    while done := learner.train(100):
        total += done
        if learner.broadcast_due():
            learner.policy_weights()
    return total


def test_interleaved_robots_are_stored_whole_at_episode_end():
    learner = make_learner()
    a, b = episode(0, 5, seed=1), episode(0, 5, seed=2)
    verdicts = []
    for ta, tb in zip(a, b):
        verdicts += [learner.ingest('robot_0', ta), learner.ingest('robot_1', tb)]
    assert verdicts[:-2] == ['pending'] * 8 and verdicts[-2:] == ['stored'] * 2
    status = learner.status()
    assert (status['received'], status['stored'], status['pending'], status['replay']) == (
        10, 10, 0, 10)
    assert learner.buffer.num_episodes == 2
    assert status['robots'] == {
        robot: {'episode_id': 0, 'next_step': 5, 'received': 5, 'stored': 5}
        for robot in ('robot_0', 'robot_1')}


def test_disorder_is_counted_and_handled():
    learner = make_learner()
    steps = episode(3, 6)
    for t in (0, 1, 2):
        assert learner.ingest('r', steps[t]) == 'pending'
    assert learner.ingest('r', steps[1]) == 'duplicate'
    assert learner.ingest('r', steps[4]) == 'gap'  # step 3 lost: steps 0-2 stored, truncated
    assert learner.status()['stored'] == 3
    assert learner.ingest('r', episode(2, 3)[1]) == 'out_of_order'  # an older episode
    assert learner.ingest('r', steps[5]) == 'stored'
    assert learner.ingest('r', steps[5]) == 'duplicate'  # after the episode's end
    bad = dataclasses.replace(steps[0], episode_id=4, observation=np.full(DIM, np.nan))
    assert learner.ingest('r', bad) == 'invalid'
    short = dataclasses.replace(steps[0], episode_id=4, action=np.zeros(3, np.float32))
    assert learner.ingest('r', short) == 'invalid'
    # The observation is not the last next observation (e.g. new encoder weights): split.
    new = episode(4, 3)
    assert learner.ingest('r', new[0]) == 'pending'
    moved = dataclasses.replace(new[1], observation=new[1].observation + 1.0)
    assert learner.ingest('r', moved) == 'discontinuity'
    # A robot whose episode ids start over (restart) at step 0.
    assert learner.ingest('r', episode(0, 2)[0]) == 'restart'
    counts = learner.status()
    assert {k: counts[k] for k in ('received', 'duplicate', 'gap', 'out_of_order', 'invalid',
                                   'discontinuity', 'restart')} == {
        'received': 13, 'duplicate': 2, 'gap': 1, 'out_of_order': 1, 'invalid': 2,
        'discontinuity': 1, 'restart': 1}
    assert counts['stored'] + counts['pending'] == 13 - 5  # every kept step, none twice
    assert counts['stored'] == len(learner.buffer)
    learner.flush_open_episodes()
    assert learner.status()['pending'] == 0


def test_a_robots_first_transition_is_no_gap():
    learner = make_learner()
    steps = episode(7, 8)
    # The robot practised before the learner listened (or while it restarted).
    assert learner.ingest('r', steps[3]) == 'pending'
    assert learner.ingest('r', steps[5]) == 'gap'  # a real gap still is one
    assert learner.status()['gap'] == 1


def test_checkpoints_are_also_due_every_period_with_new_updates(tmp_path):
    now = [100.0]
    td3 = TD3Config(hidden_sizes=(16, 16), batch_size=8, learning_starts=10, updates_per_step=2)
    learner = Learner(LearnerConfig(td3=td3, checkpoint_every=1000, checkpoint_period_s=30.0,
                                    run_dir='', replay_capacity=1000), clock=lambda: now[0])
    for record in episode(0, 12):
        learner.ingest('r', record)
    now[0] += 29.0
    assert train_all(learner) > 0 and not learner.checkpoint_due()
    now[0] += 1.0
    assert learner.checkpoint_due()  # 30 s since the start, with new updates
    learner.save(tmp_path)
    assert not learner.checkpoint_due()
    now[0] += 60.0
    assert not learner.checkpoint_due()  # nothing new to save
    for record in episode(1, 2):
        learner.ingest('r', record)
    assert train_all(learner) > 0 and learner.checkpoint_due()
    off = Learner(dataclasses.replace(learner.config, checkpoint_every=0,
                                      checkpoint_period_s=0.0), clock=lambda: now[0])
    for record in episode(0, 12):
        off.ingest('r', record)
    now[0] += 1e6
    assert train_all(off) > 0 and not off.checkpoint_due()


def test_update_ratio_and_broadcasts():
    learner = make_learner()
    assert learner.train(100) == 0
    for record in episode(0, 9):
        learner.ingest('r', record)
    assert learner.updates_due() == 0 and learner.train(100) == 0  # 9 < learning_starts 10
    for record in episode(1, 6):
        learner.ingest('r', record)
    # 15 stored, learning from the 10th: (15 - 10 + 1) * 2 updates owed.
    assert learner.updates_due() == 12
    # Training pauses at every multiple of broadcast_every (5) for the broadcast.
    assert learner.train(3) == 3 and not learner.broadcast_due()
    assert learner.train(100) == 2 and learner.broadcast_due()
    version, config_json, data = learner.policy_weights()
    assert version == 1 and not learner.broadcast_due()
    state, spec = decode_policy_weights(data)
    assert spec.hidden_sizes == (16, 16) and '"obs_dim": 4' in config_json
    for key, value in learner.agent.actor.detached_state_dict().items():
        assert torch.equal(state[key], value)
    assert learner.train(100) == 5 and learner.policy_weights()[0] == 2
    assert learner.train(100) == 2 and learner.updates == 12 and not learner.broadcast_due()
    assert learner.status()['updates_behind'] == 0 and learner.train(100) == 0


def test_checkpoint_resume_restores_counters_optimizer_and_replay(tmp_path):
    learner = make_learner(checkpoint_every=5)
    for record in episode(0, 12) + episode(1, 4)[:2]:
        learner.ingest('r', record)
    assert train_all(learner) == 6 and learner.weights_version == 1
    assert learner.checkpoint_due()
    path = learner.save(tmp_path)
    assert path == resolve_checkpoint(tmp_path) and not learner.checkpoint_due()
    status = learner.status()

    resumed = make_learner(checkpoint_every=5)
    assert resumed.resume(tmp_path)
    again = resumed.status()
    for key in ('received', 'stored', 'updates', 'weights_version', 'replay'):
        assert again[key] == status[key], key
    assert again['pending'] == 0  # open episodes are not saved by periodic checkpoints
    original = learner.agent.critic_optimizer.state_dict()['state']
    restored = resumed.agent.critic_optimizer.state_dict()['state']
    assert set(original) == set(restored)
    for index in original:
        assert torch.equal(original[index]['exp_avg_sq'], restored[index]['exp_avg_sq'])
    for a, b in zip(learner.agent.critic1.parameters(), resumed.agent.critic1.parameters()):
        assert torch.equal(a, b)
    # Training goes on from there with the same ratio.
    for record in episode(2, 2):
        resumed.ingest('r', record)
    assert train_all(resumed) == 4 and resumed.weights_version == 2
    # Another run's directory is refused.
    with pytest.raises(ValueError, match='task'):
        make_learner(task='pusher').resume(tmp_path)
    assert not make_learner().resume(tmp_path / 'empty')


def test_serving_a_checkpoint_loads_its_actor(tmp_path):
    learner = make_learner()
    learner.save(tmp_path)
    server = make_learner(train=False, td3=TD3Config(hidden_sizes=(32,)))
    assert server.load_actor(tmp_path) == tmp_path / 'learner.safetensors'
    assert server.served_actor.spec.hidden_sizes == (16, 16)
    obs = np.zeros(DIM)
    np.testing.assert_array_equal(GoalPolicy(server.served_actor).act(obs, obs, False),
                                  GoalPolicy(learner.agent.actor).act(obs, obs, False))
    # The served actor is what goes out.
    state, spec = decode_policy_weights(server.policy_weights()[2])
    assert spec.hidden_sizes == (16, 16)
    for key, value in learner.agent.actor.detached_state_dict().items():
        assert torch.equal(state[key], value)
    with pytest.raises(FileNotFoundError):
        server.load_actor(tmp_path / 'missing')


def test_vae_weights_load_into_the_encoders(tmp_path):
    save_vae(tmp_path / 'vae.safetensors', untrained_vae(latent_dim=DIM), {'version': 3})
    version, config_json, data = load_vae_weights(tmp_path, DIM)
    encoder = LatentEncoder()
    encoder.load_payload(data, version, config_json)
    assert (encoder.version, encoder.config.image_size, encoder.config.latent_dim) == (3, 48, DIM)
    with pytest.raises(ValueError, match='latent'):
        load_vae_weights(tmp_path / 'vae.safetensors', DIM + 1)
    with pytest.raises(ValueError):
        load_vae_weights(tmp_path / 'missing.safetensors', DIM)


def test_mahalanobis_reward_uses_the_vae_checkpoints_variance(tmp_path):
    vae = untrained_vae(latent_dim=DIM)
    variance = [0.5, 1.0, 2.0, 4.0]
    save_vae(tmp_path / 'vae.safetensors', vae, {LATENT_VARIANCE_KEY: variance})
    learner = make_learner(reward='mahalanobis', vae_checkpoint=str(tmp_path),
                           relabel=RelabelConfig(1.0, 0.0, 0.0))
    for record in episode(0, 12):
        learner.ingest('r', record)
    batch = learner.buffer.sample(32)
    difference = (batch['achieved_goal'] - batch['goal']).numpy()
    np.testing.assert_allclose(batch['reward'].numpy(),
                               -np.sqrt((difference ** 2 / np.array(variance)).sum(axis=1)),
                               rtol=1e-5)
    # Without a variance to read, the learner refuses to start.
    save_vae(tmp_path / 'plain.safetensors', vae)
    with pytest.raises(ValueError, match=LATENT_VARIANCE_KEY):
        make_learner(reward='mahalanobis', vae_checkpoint=str(tmp_path / 'plain.safetensors'))
    with pytest.raises(ValueError, match='vae_checkpoint'):
        make_learner(reward='mahalanobis')
    with pytest.raises(ValueError, match='reward'):
        make_learner(reward='manhattan')


def test_frames_imagined_goals_are_the_replays_latents():
    learner = make_learner(imagined_goals='frames')
    sampler = learner.trainer.prior_goal_sampler
    assert sampler(3).shape == (3, DIM)  # an empty replay: the prior
    transitions = episode(0, 5, seed=4)
    for transition in transitions:
        learner.ingest('robot_0', transition)
    frames = np.stack([t.observation for t in transitions] + [transitions[-1].next_observation])
    drawn = sampler(40)
    assert drawn.dtype == np.float32
    assert all(np.abs(frames - goal).max(axis=1).min() == 0 for goal in drawn)
    assert len({goal.tobytes() for goal in drawn}) > 1
    # The relabelled batches use them: every 'prior' goal of a batch is a stored frame's latent.
    batch = learner.trainer.buffer.sample(64)
    prior = batch['goal'][batch['goal_source'] == PRIOR_GOAL].numpy()
    assert len(prior) and all(np.abs(frames - goal).max(axis=1).min() < 1e-6 for goal in prior)
    with pytest.raises(ValueError, match='imagined_goals'):
        LearnerConfig(imagined_goals='dreams')


def with_hands(transitions, inside) -> list:
    """Give each transition the hands of its frames: in the hand box where `inside(t)`."""
    def hand(t):
        return np.array([0.0, 0.6, 0.2] if inside(t) else [0.2, 0.6, 0.2], np.float32)
    return [dataclasses.replace(tr, hand=hand(t), next_hand=hand(t + 1))
            for t, tr in enumerate(transitions)]


@pytest.mark.parametrize('skew', [0.0, -1.0])
def test_hand_box_goals_are_latents_of_frames_with_the_hand_in_the_box(tmp_path, skew):
    box = HandBox(low=(-0.05, 0.55), high=(0.05, 0.65))
    learner = make_learner(imagined_goals='frames', frame_goals_hand_box=box,
                           skew_fit=SkewFitConfig(alpha=skew, density='latent_kde'))
    sampler = learner.trainer.prior_goal_sampler
    outside = with_hands(episode(0, 5, seed=4), lambda t: False)
    for transition in outside:
        learner.ingest('robot_0', transition)
    stored = learner.trainer.buffer.latents()
    # No frame in the box yet: the prior draws, never a stored latent.
    assert all(np.abs(stored - goal).max(axis=1).min() > 0 for goal in sampler(20))
    assert learner.status()['frame_goals_in_hand_box'] == 0
    transitions = with_hands(episode(1, 6, seed=5), lambda t: t in (2, 3))
    transitions[4] = dataclasses.replace(transitions[4], next_hand=None)  # frame 5: unknown
    for transition in transitions:
        learner.ingest('robot_0', transition)
    frames = [transitions[2].observation, transitions[3].observation]
    assert learner.status()['frame_goals_in_hand_box'] == 2
    drawn = sampler(200)
    nearest = [min(np.abs(frame - goal).max() for frame in frames) for goal in drawn]
    assert max(nearest) == 0 and len({goal.tobytes() for goal in drawn}) == 2
    # The hands are kept with the replay: a resumed learner draws from the same frames.
    hands = learner.trainer.buffer.hands()
    assert np.isnan(hands).any(axis=1).sum() == 1
    path = learner.save(tmp_path)
    resumed = make_learner(imagined_goals='frames', frame_goals_hand_box=box,
                           skew_fit=SkewFitConfig(alpha=skew, density='latent_kde'))
    assert resumed.resume(tmp_path) and path.is_file()
    np.testing.assert_array_equal(resumed.trainer.buffer.hands(), hands)
    drawn = resumed.trainer.prior_goal_sampler(50)
    assert max(min(np.abs(frame - goal).max() for frame in frames) for goal in drawn) == 0
    with pytest.raises(ValueError, match="imagined_goals 'frames'"):
        LearnerConfig(frame_goals_hand_box=box)
