"""GoalReplayBuffer: relabeling invariants, wrap-around, latent refresh and persistence."""

import numpy as np
import pytest

from rig_ros.core.replay import (
    FUTURE_GOAL, GoalReplayBuffer, PRIOR_GOAL, RelabelConfig, ROLLOUT_GOAL)
from rig_ros.core.rewards import euclidean_latent_reward

# Rollout goals sit far from every achieved goal, so their rewards are recognisable.
SENTINEL_GOAL = np.array([1000.0, 1000.0, 1000.0], np.float32)


def standard_normal_sampler(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda n: rng.standard_normal((n, 3))


def frame(episode: int, step: int) -> np.ndarray:
    """Observation that names its episode and step; channel 2 is a tag for refreshes."""
    return np.array([episode, step, 0.0], np.float32)


def frame_image(episode: int, step: int) -> np.ndarray:
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0], image[..., 1] = episode % 256, step
    return image


def fill(buffer: GoalReplayBuffer, num_episodes: int, leave_last_open: bool,
         seed: int = 0) -> list[tuple[int, int]]:
    """Add episodes of random lengths; return every (episode, step) frame in writing order."""
    rng = np.random.default_rng(seed)
    frames = []
    images = buffer.image_shape is not None
    for episode in range(num_episodes):
        length = int(rng.integers(1, 16))
        frames.append((episode, 0))
        for step in range(length):
            frames.append((episode, step + 1))
            last = step == length - 1 and not (leave_last_open and episode == num_episodes - 1)
            buffer.add_step(frame(episode, step), rng.uniform(-1, 1, 2), frame(episode, step + 1),
                            SENTINEL_GOAL, image=frame_image(episode, step) if images else None,
                            next_image=frame_image(episode, step + 1) if images else None,
                            episode_end=last)
    return frames


def make_buffer(capacity: int, relabel: RelabelConfig | None = None,
                image_shape: tuple | None = None, rng: int = 0) -> GoalReplayBuffer:
    return GoalReplayBuffer(capacity=capacity, obs_dim=3, goal_dim=3, action_dim=2,
                            reward_fn=euclidean_latent_reward,
                            prior_goal_sampler=standard_normal_sampler(), relabel=relabel,
                            image_shape=image_shape, rng=rng)


def test_construction_is_by_keyword_only():
    with pytest.raises(TypeError):
        GoalReplayBuffer(10, 3, 3, 2, euclidean_latent_reward, standard_normal_sampler())


@pytest.mark.parametrize('fractions', [(0.5, 0.5, 0.1), (-0.1, 0.6, 0.5), (0.2, 0.5, 0.2)])
def test_relabel_config_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match='fraction|sum to 1'):
        RelabelConfig(*fractions)


# Capacities: no wrap; wrap with episodes straddling it; smaller than one episode.
@pytest.mark.parametrize('capacity', [10_000, 37, 7])
@pytest.mark.parametrize('leave_last_open', [False, True])
def test_relabeling_invariants(capacity, leave_last_open):
    buffer = make_buffer(capacity, RelabelConfig(0.3, 0.3, 0.4))
    frames = fill(buffer, 40, leave_last_open)
    live = set(frames[-capacity:])
    newest_step = {}
    for episode, step in frames:
        newest_step[episode] = step
    batch = {key: value.numpy() for key, value in buffer.sample(4000).items()}
    obs, next_obs, goal = batch['obs'], batch['next_obs'], batch['goal']
    source, reward = batch['goal_source'], batch['reward']

    def keys(rows):
        return {(int(row[0]), int(row[1])) for row in rows}

    assert keys(obs) <= live and keys(next_obs) <= live
    np.testing.assert_array_equal(next_obs[:, :2], obs[:, :2] + [0, 1])

    future = source == FUTURE_GOAL
    assert future.any()
    # A future goal is achieved in the same episode at or after the sampled step, is still
    # stored, and was written already (for an open episode too).
    assert keys(goal[future]) <= live
    np.testing.assert_array_equal(goal[future, 0], obs[future, 0])
    assert (goal[future, 1] >= next_obs[future, 1]).all()
    assert all(step <= newest_step[int(episode)] for episode, step, _ in goal[future])
    stored_obs = buffer.export()['obs']
    future_index, index = batch['future_index'][future], batch['index'][future]
    np.testing.assert_array_equal(stored_obs[future_index, 0], stored_obs[index, 0])
    assert (stored_obs[future_index, 1] >= stored_obs[index, 1]).all()
    assert (batch['future_index'][~future] == -1).all()

    rollout = source == ROLLOUT_GOAL
    assert (goal[rollout] == SENTINEL_GOAL).all()
    np.testing.assert_allclose(reward, euclidean_latent_reward(next_obs, goal), rtol=1e-6)
    rollout_reward = euclidean_latent_reward(next_obs, SENTINEL_GOAL)
    np.testing.assert_array_equal(reward[rollout], rollout_reward[rollout])
    assert (reward[~rollout] != rollout_reward[~rollout]).all()


@pytest.mark.parametrize('fractions', [(0.2, 0.5, 0.3), (0.1, 0.5, 0.4), (1.0, 0.0, 0.0),
                                       (0.0, 0.0, 1.0)])
def test_goal_source_fractions(fractions):
    buffer = make_buffer(500, RelabelConfig(*fractions))
    fill(buffer, 50, leave_last_open=False)
    num_samples = 20_000
    source = buffer.sample(num_samples)['goal_source'].numpy()
    for kind, fraction in zip((ROLLOUT_GOAL, PRIOR_GOAL, FUTURE_GOAL), fractions):
        tolerance = 5 * np.sqrt(fraction * (1 - fraction) / num_samples) + 1e-9
        assert abs(np.mean(source == kind) - fraction) <= tolerance


def test_prior_goals_come_from_the_sampler():
    buffer = make_buffer(500, RelabelConfig(0.0, 1.0, 0.0))
    fill(buffer, 50, leave_last_open=False)
    goal = buffer.sample(20_000)['goal'].numpy()
    np.testing.assert_allclose(goal.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(goal.std(axis=0), 1.0, atol=0.05)


def test_refresh_latents_re_encodes_every_frame():
    buffer = make_buffer(37, RelabelConfig(0.0, 0.0, 1.0), image_shape=(2, 2, 3))
    fill(buffer, 20, leave_last_open=True)

    def encode(images):
        return np.stack([images[:, 0, 0, 0], images[:, 0, 0, 1],
                         np.full(len(images), 7.0)], axis=1).astype(np.float32)

    assert buffer.images().shape == (37, 2, 2, 3)
    buffer.refresh_latents(encode)
    # The open episode goes on with an obs from the old encoder.
    state = buffer.export()
    step = int(state['obs'][(state['frames'] - 1) % 37, 1])
    buffer.add_step(frame(19, step), np.zeros(2), frame(19, step + 1), SENTINEL_GOAL,
                    next_image=frame_image(19, step + 1))
    buffer.refresh_latents(encode)
    batch = buffer.sample(2000)
    for key in ('obs', 'next_obs', 'goal', 'achieved_goal'):
        assert (batch[key][:, 2] == 7.0).all(), key
    # Images encode the same (episode, step) as the old latents (episode < 256 here).
    np.testing.assert_array_equal(batch['next_obs'][:, 1], batch['obs'][:, 1] + 1)


def test_add_step_checks_continuity_and_images():
    buffer = make_buffer(50, image_shape=(2, 2, 3))
    with pytest.raises(ValueError, match='image'):
        buffer.add_step(frame(0, 0), np.zeros(2), frame(0, 1), SENTINEL_GOAL,
                        next_image=frame_image(0, 1))
    buffer.add_step(frame(0, 0), np.zeros(2), frame(0, 1), SENTINEL_GOAL,
                    image=frame_image(0, 0), next_image=frame_image(0, 1))
    with pytest.raises(ValueError, match='end_episode'):
        buffer.add_step(frame(1, 0), np.zeros(2), frame(1, 1), SENTINEL_GOAL,
                        next_image=frame_image(1, 1))
    assert len(buffer) == 1 and buffer.num_episodes == 1 and buffer.episode_open


def test_export_restore_round_trip():
    buffer = make_buffer(37, image_shape=(2, 2, 3), rng=5)
    fill(buffer, 12, leave_last_open=True)
    state = buffer.export()
    assert all(isinstance(value, (np.ndarray, int)) for value in state.values())
    restored = GoalReplayBuffer.restore(state, reward_fn=euclidean_latent_reward,
                                        prior_goal_sampler=standard_normal_sampler(), rng=5)
    assert len(restored) == len(buffer) and restored.num_episodes == buffer.num_episodes
    for key, value in restored.export().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    # Filling does not touch the sampling generator, so both draw the same batch.
    expected, actual = buffer.sample(64), restored.sample(64)
    for key in expected:
        np.testing.assert_array_equal(actual[key].numpy(), expected[key].numpy(), err_msg=key)
    # The open episode carries on after a restore.
    last_obs = state['obs'][(state['frames'] - 1) % 37]
    restored.add_step(last_obs, np.zeros(2), last_obs + [0, 1, 0], SENTINEL_GOAL,
                      next_image=np.zeros((2, 2, 3), np.uint8), episode_end=True)
    assert len(restored) >= len(buffer) and not restored.episode_open


def test_hands_are_kept_per_frame_and_exported():
    buffer = make_buffer(capacity=4)
    obs = [np.full(3, float(t), np.float32) for t in range(5)]
    for t in range(3):  # hands known at frames 0, 2 and 3 (1: unknown)
        buffer.add_step(obs[t], np.zeros(2), obs[t + 1], SENTINEL_GOAL,
                        hand=np.array([0.0, 0.6, 0.2]) if t == 0 else None,
                        next_hand=None if t == 0 else np.array([0.1 * t, 0.6, 0.2]))
    hands = buffer.hands()
    assert hands.shape == (4, 3) and not hands.flags.writeable
    assert np.isnan(hands[1]).all() and hands[3, 0] == pytest.approx(0.2)
    buffer.add_step(obs[3], np.zeros(2), obs[4], SENTINEL_GOAL, episode_end=True)  # wraps
    assert np.isnan(buffer.hands()[0]).all()  # frame 4 took slot 0: its hand is unknown
    state = buffer.export()
    restored = GoalReplayBuffer.restore(state, reward_fn=euclidean_latent_reward,
                                        prior_goal_sampler=standard_normal_sampler())
    np.testing.assert_array_equal(restored.hands(), buffer.hands())
    del state['hands']  # a replay saved before hands were kept
    old = GoalReplayBuffer.restore(state, reward_fn=euclidean_latent_reward,
                                   prior_goal_sampler=standard_normal_sampler())
    assert np.isnan(old.hands()).all()
