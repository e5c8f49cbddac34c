"""PracticeRun: explore, pretrain, practise; the version guard, fine-tuning, resume (no ROS)."""

import dataclasses

from factories import episode
import numpy as np
import pytest

from rig_ros.core import practice_run
from rig_ros.core.hands import HandBox
from rig_ros.core.learner import LearnerConfig
from rig_ros.core.policy_runtime import TransitionRecord
from rig_ros.core.practice_run import PracticeRun
from rig_ros.core.skew_fit import SkewFitConfig
from rig_ros.core.td3 import TD3Config
from rig_ros.core.vae import encode_images, VAEConfig
from rig_ros.core.vae_training import read_vae_checkpoint

EMPTY = np.zeros(0, np.float32)
STEPS = 6  # per exploration episode: 7 frames


def make_config(run_dir, **overrides) -> LearnerConfig:
    """Return a tiny run: 24 exploration frames, 6 VAE steps of 8 frames, 16x16 TD3."""
    values = {
        'run_dir': str(run_dir), 'replay_capacity': 1000, 'checkpoint_every': 0,
        'checkpoint_period_s': 0, 'broadcast_every': 5, 'tensorboard': False,
        'explore_frames': 24, 'vae_steps': 6,
        'vae': VAEConfig(image_size=48, latent_dim=4, batch_size=8), 'vae_checkpoint_every': 2,
        'frame_chunk_frames': 4, 'frame_flush_period_s': 0.0, 'reconstruction_period_s': 1e-9,
        'td3': TD3Config(hidden_sizes=(16, 16), batch_size=8, learning_starts=10,
                         updates_per_step=1)}
    return LearnerConfig(**{**values, **overrides})


def exploration(episode_id: int, seed: int) -> list[TransitionRecord]:
    """Return an exploration episode: empty latents, random 84x84 frames and actions."""
    rng = np.random.default_rng([seed, episode_id])
    frames = rng.integers(0, 256, (STEPS + 1, 84, 84, 3), dtype=np.uint8)
    return [TransitionRecord(episode_id, t, EMPTY, rng.uniform(-1, 1, 2).astype(np.float32),
                             EMPTY, EMPTY, t == STEPS - 1, 0, float(t), image=frames[t],
                             next_image=frames[t + 1]) for t in range(STEPS)]


def explore(run: PracticeRun, episodes: int = 2) -> list[str]:
    """Two robots' exploration episodes, interleaved; return the verdicts."""
    verdicts = []
    for episode_id in range(episodes):
        for a, b in zip(exploration(episode_id, 0), exploration(episode_id, 1)):
            verdicts += [run.ingest('robot_0', a), run.ingest('robot_1', b)]
    return verdicts


def work_until(run: PracticeRun, kind: str, limit: int = 50) -> list:
    """Call work() until an event of `kind`; return every event seen."""
    seen = []
    for _ in range(limit):
        seen += run.work().events
        if any(event.kind == kind for event in seen):
            return seen
    raise AssertionError(f'no {kind!r} event: {[event.kind for event in seen]}')


def versioned(records, version: int, next_version: int = None):
    next_version = version if next_version is None else next_version
    return [dataclasses.replace(r, vae_version=version, next_vae_version=next_version)
            for r in records]


def encoded_replay(run: PracticeRun, vae) -> tuple[np.ndarray, np.ndarray]:
    """(replay observations, the same frames encoded by `vae`)."""
    buffer = run.learner.buffer
    live = len(buffer.images())
    return buffer._obs[:live], encode_images(vae, buffer.images().copy())[0]


def test_a_run_explores_pretrains_and_practises(tmp_path):
    run = PracticeRun(make_config(tmp_path))
    assert 'a new run' in run.resume()
    assert run.ingest('robot_0', episode(0, 3)[0]) == 'not_exploring'
    verdicts = explore(run)
    assert verdicts == ['frame'] * 24
    status = run.status()
    # 2 robots x 2 episodes x (6 frames + the last next frame).
    assert (status['stage'], status['frames'], status['not_exploring']) == ('explore', 28, 1)
    # Every exploration step is an environment step of the run's budget.
    assert (status['explore_steps'], status['received'], status['practice_received']) == (
        24, 24, 0)

    events = run.work().events
    assert [event.kind for event in events] == ['stage'] and run.stage == 'pretrain'
    assert run.frames.stored == 28 and run.status()['progress'] == 0.0
    assert run.ingest('robot_0', exploration(5, 0)[0]) == 'exploring'
    assert run.ingest('robot_0', versioned(episode(0, 3), 1)[0]) == 'pretraining'
    assert run.status()['explore_steps'] == 25  # the refused step was taken all the same

    events = work_until(run, 'vae')
    kinds = [event.kind for event in events]
    assert kinds.count('pretrain') == 1 and kinds[-2:] == ['stage', 'vae'], kinds
    reconstruction = next(event.image for event in events if event.kind == 'reconstruction')
    assert reconstruction.dtype == np.uint8 and reconstruction.shape[1:] == (96, 3)
    metrics = next(event.metrics for event in events if event.kind == 'pretrain')
    assert metrics['step'] == 6 and np.isfinite(metrics['loss'])
    vae, version = read_vae_checkpoint(tmp_path)
    assert version == 1 and events[-1].version == 1
    # The exploration seeds the replay: 4 episodes of 6 steps, encoded by version 1.
    status = run.status()
    assert (status['stage'], status['vae_version'], status['replay_seeded'],
            status['stored']) == ('practise', 1, True, 24)
    assert run.learner.buffer.num_episodes == 4

    # Practice transitions: only latents of version 1 (or unversioned) join the replay.
    steps = versioned(episode(1, 4), 1)
    assert run.ingest('r', steps[0]) == 'pending'
    assert run.ingest('r', dataclasses.replace(steps[1], next_vae_version=2)) == 'mixed'
    assert run.ingest('r', versioned([steps[1]], 2)[0]) == 'ahead'
    assert run.ingest('r', steps[2]) == 'gap'  # step 1 was refused: steps 0 and 2.. split
    assert run.ingest('r', steps[3]) == 'stored'
    assert run.ingest('s', episode(2, 2)[0]) == 'pending'  # unversioned: version 1 replay
    assert run.ingest('s', exploration(0, 0)[0]) == 'exploring'
    status = run.status()
    assert (status['mixed'], status['ahead'], status['stored']) == (1, 1, 27)
    work = run.work()
    assert work.busy and run.learner.updates > 0


def test_fine_tuning_re_encodes_the_replay_and_refuses_the_old_version(tmp_path):
    run = PracticeRun(make_config(tmp_path, fine_tune_vae_every=30, fine_tune_vae_steps=3))
    run.resume()
    explore(run)
    work_until(run, 'vae')
    assert run.learner.buffer.image_shape == (48, 48, 3)
    observations, encoded = encoded_replay(run, run.vae)
    np.testing.assert_allclose(observations, encoded, atol=1e-5)

    # A robot's unfinished episode of version 1 is stored and re-encoded by the round.
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 84, 84, 3), dtype=np.uint8)
    latents = encode_images(run.vae, frames[:, 18:66, 18:66])[0]  # any latents of v1
    steps = [TransitionRecord(0, t, latents[t], np.zeros(2, np.float32), latents[t + 1],
                              latents[0], False, 0, 0.0, image=frames[t],
                              next_image=frames[t + 1], vae_version=1, next_vae_version=1)
             for t in range(3)]
    assert [run.ingest('robot_0', step) for step in steps[:2]] == ['pending'] * 2
    before = run.learner.buffer._obs[:3].copy()
    # 24 seeded + 2: the round is due at 30 stored transitions; force it now.
    event = run.fine_tune()
    assert (event.kind, event.version) == ('vae', 2)
    vae, version = read_vae_checkpoint(tmp_path)
    assert version == 2 and run.status()['vae_version'] == 2
    assert run.learner.counts['stored'] == 26 and run.status()['pending'] == 0
    observations, encoded = encoded_replay(run, vae)
    np.testing.assert_allclose(observations, encoded, atol=1e-5)
    assert not np.allclose(before, observations[:3])
    assert run.ingest('robot_0', steps[2]) == 'stale'
    assert run.ingest('robot_0', versioned([steps[2]], 0)[0]) == 'stale'  # unversioned

    # A kill after the round, before the replay was saved again: the resumed replay (saved
    # at seeding, plus the episode file) is re-encoded with the file's version.
    again = PracticeRun(make_config(tmp_path, fine_tune_vae_every=30, fine_tune_vae_steps=3))
    assert 'VAE version 2' in again.resume()
    assert again.versions.current == 2 and again.learner.counts['stored'] == 26
    observations, encoded = encoded_replay(again, vae)
    np.testing.assert_allclose(observations, encoded, atol=1e-5)
    # The replay is saved by the next work(), after the host broadcast the new version.
    assert 'checkpoint' in [event.kind for event in run.work().events]
    assert [event.kind for event in run.work().events].count('checkpoint') == 0


def test_skew_fit_skews_pretraining_fine_tuning_and_relabelling_goals(tmp_path):
    skew = SkewFitConfig(alpha=-1.0, density='latent_kde', reweight_every=2)
    run = PracticeRun(make_config(tmp_path, skew_fit=skew, imagined_goals='frames',
                                  fine_tune_vae_every=30, fine_tune_vae_steps=3))
    run.resume()
    explore(run)
    events = work_until(run, 'vae')
    pretrain = next(event.metrics for event in events if event.kind == 'pretrain')
    # The last 3 of 6 steps drew by weight: worth fewer frames than the 27 trained on.
    assert 0 < pretrain['skew_effective_frames'] < len(run.frames.images()) - 1
    frames = len(run.learner.buffer.images())
    assert 0 < run.fine_tune().metrics['skew_effective_frames'] < frames
    # Relabelling's imagined goals are the (re-encoded) replay's latents.
    latents = run.learner.buffer.latents()
    goals = run.learner.trainer.prior_goal_sampler(50)
    distances = ((goals[:, None] - latents[None]) ** 2).sum(-1).min(axis=1)
    np.testing.assert_allclose(distances, 0.0, atol=1e-10)
    with pytest.raises(ValueError, match="imagined_goals 'frames'"):
        make_config(tmp_path, skew_fit=skew)


def test_exploration_hands_reach_the_replay_and_its_hand_box_goals(tmp_path):
    box = HandBox(low=(-0.05, 0.55), high=(0.05, 0.65))
    run = PracticeRun(make_config(tmp_path, imagined_goals='frames', frame_goals_hand_box=box))
    run.resume()

    def hand(step: int) -> np.ndarray:  # in the box at even steps
        return np.array([0.0 if step % 2 == 0 else 0.3, 0.6, 0.2], np.float32)
    for episode_id in range(4):
        for record in exploration(episode_id, 0):
            assert run.ingest('robot_0', dataclasses.replace(
                record, hand=hand(record.step_index),
                next_hand=hand(record.step_index + 1))) == 'frame'
    work_until(run, 'vae')
    buffer = run.learner.buffer
    inside = box.inside(buffer.hands())
    assert len(inside) == 28 and inside.sum() == 16  # 4 episodes x steps 0, 2, 4, 6
    goals = run.learner.trainer.prior_goal_sampler(100)
    in_box = buffer.latents()[inside]
    assert max(np.abs(in_box - goal).max(axis=1).min() for goal in goals) == 0


def test_a_kill_in_any_stage_keeps_frames_vae_steps_and_episodes(tmp_path, monkeypatch):
    monkeypatch.setattr(practice_run, 'PRETRAIN_CHUNK', 2)
    run = PracticeRun(make_config(tmp_path))
    run.resume()
    for a in exploration(0, 0)[:5]:  # 5 frames: a chunk of 4 written, 1 waiting
        run.ingest('robot_0', a)
    # Killed while exploring: the written chunk survives.
    run = PracticeRun(make_config(tmp_path))
    assert '4 exploration frames kept' in run.resume() and run.status()['frames'] == 4
    assert run.status()['explore_steps'] == 4  # counted from the chunks on disk
    explore(run)
    run.work()
    assert run.stage == 'pretrain'
    run.work()
    run.work()  # 4 VAE steps: checkpointed at 2 and 4
    assert run.pretraining.step == 4

    # Killed while pretraining: resumed from the step-4 checkpoint, every frame kept.
    run = PracticeRun(make_config(tmp_path))
    found = run.resume()
    assert 'stage pretrain (resumed)' in found and 'step 4/6' in found, found
    assert run.frames.stored == 32 and run.status()['vae_step'] == 4
    events = work_until(run, 'vae')
    assert next(e for e in events if e.kind == 'pretrain').metrics['step'] == 6
    seeded = run.learner.counts['stored']
    assert seeded == 3 + 24  # the 4 frames kept before the kill: one more 3-step episode
    for step in versioned(episode(0, 3), 1):
        run.ingest('robot_0', step)

    # Killed while practising: the seeded replay and the episode file come back, once.
    run = PracticeRun(make_config(tmp_path))
    found = run.resume()
    assert 'stage practise (resumed)' in found, found
    assert run.learner.counts['stored'] == seeded + 3
    # The seeded exploration is stored, not received: the step count is not doubled.
    status = run.status()
    assert (status['seeded'], status['practice_received']) == (seeded, 3), status
    assert status['received'] == status['explore_steps'] + 3, status
    assert run.status()['replay_seeded'] and run.learner.buffer.num_episodes == 5 + 1


def test_a_given_vae_practises_at_once_and_no_run_dir_needs_one(tmp_path, vae_checkpoint):
    run = PracticeRun(make_config('', vae_checkpoint=str(vae_checkpoint)))
    assert 'no run directory' in run.resume()
    assert run.stage == 'practise' and run.status()['replay_seeded']
    assert run.ingest('r', episode(0, 2)[0]) == 'pending'
    assert run.vae_weights_file() == vae_checkpoint
    with pytest.raises(ValueError, match='run_dir'):
        PracticeRun(make_config(''))
    with pytest.raises(ValueError, match='vae.latent_dim'):
        make_config(tmp_path, latent_dim=3)


def test_a_mahalanobis_run_takes_the_variance_of_its_own_vae(tmp_path):
    from rig_ros.core.learner import Learner, load_latent_variance
    from rig_ros.core.rewards import mahalanobis_latent_reward
    with pytest.raises(ValueError, match="needs a VAE's variance"):
        Learner(make_config('', reward='mahalanobis'))
    run = PracticeRun(make_config(tmp_path, reward='mahalanobis'))
    run.resume()
    achieved, goal = np.zeros((3, 4), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(RuntimeError, match='no latent variance yet'):
        run.learner.trainer.reward_fn(achieved, goal)  # no VAE yet: no metric either
    explore(run)
    work_until(run, 'vae')
    assert run.stage == 'practise' and run.learner.buffer.num_episodes == 4
    variance = load_latent_variance(tmp_path, 4)
    assert not np.allclose(variance, 1.0)  # the metric differs from the Euclidean one
    expected = mahalanobis_latent_reward(achieved, goal, variance)
    np.testing.assert_allclose(run.learner.trainer.reward_fn(achieved, goal), expected)
    np.testing.assert_allclose(run.learner.buffer.reward_fn(achieved, goal), expected)
    run.work()  # TD3 samples the seeded replay with that reward
    assert run.learner.updates > 0

    # A restart in practice reads the variance from the run's VAE again.
    again = PracticeRun(make_config(tmp_path, reward='mahalanobis'))
    again.resume()
    np.testing.assert_allclose(again.learner.trainer.reward_fn(achieved, goal), expected)
