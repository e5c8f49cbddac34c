"""Skew-Fit's skewing: rare frames weigh more, capped; VAE batches and goals follow the weights."""

import numpy as np
import pytest
import torch

from rig_ros.core.hands import HandBox
from rig_ros.core.replay import GoalReplayBuffer, RelabelConfig
from rig_ros.core.rewards import euclidean_latent_reward
from rig_ros.core.skew_fit import (
    effective_frames, fit_skewed, frame_weights, kde_log_density, latent_skew_weights,
    log_density, skew_weights, skewed_replay_latent_goals, SkewedGoalSampler, SkewFitConfig)
from rig_ros.core.trainer import replay_latent_goals
from rig_ros.core.vae import ConvVAE, encode_images, VAEConfig, VAETrainer

VAE = VAEConfig(image_size=48, latent_dim=4, batch_size=16)
COMMON, RARE = 90, 10


def common_and_rare_frames() -> np.ndarray:
    """90 frames of a dark scene with a puck on the left, 10 with it on the right."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 30, (COMMON + RARE, 48, 48, 3), dtype=np.uint8)
    frames[:COMMON, 20:30, 5:15] = 255
    frames[COMMON:, 20:30, 33:43] = 255
    return frames


@pytest.fixture(scope='module')
def trained_vae() -> ConvVAE:
    torch.manual_seed(0)
    vae = ConvVAE(VAE)
    VAETrainer(vae, VAE).fit(common_and_rare_frames(), 150, progress=False)
    return vae.eval()


def test_weights_favour_rare_frames_sum_to_one_and_respect_the_cap():
    log_p = np.array([-1000.0, -1010.0, -1100.0, -1500.0])
    uniform = skew_weights(log_p, 0.0, 20.0)
    np.testing.assert_allclose(uniform, 0.25)
    weights = skew_weights(log_p, -0.01, 20.0)  # mild: no cap reached
    assert np.all(np.diff(weights) > 0) and weights.sum() == pytest.approx(1.0)
    # alpha -1 on hundreds of nats: uncapped the least likely frame would take everything.
    capped = skew_weights(log_p, -1.0, 2.0)
    assert capped.sum() == pytest.approx(1.0)
    assert capped.max() <= 2.0 / 4 + 1e-12
    assert np.all(np.diff(capped) >= -1e-12)  # still ordered by rarity
    assert effective_frames(capped) > 1.5
    assert effective_frames(uniform) == pytest.approx(4.0)


def test_many_frames_over_the_cap_are_all_pinned_to_it():
    log_p = -np.arange(100.0) * 50
    weights = skew_weights(log_p, -1.0, 5.0)
    assert weights.max() == pytest.approx(0.05) and weights.sum() == pytest.approx(1.0)
    assert (weights > 0.05 - 1e-9).sum() >= 19  # the 20 rarest share the cap


@pytest.mark.parametrize('density', ['importance', 'latent_kde'])
def test_a_trained_vae_gives_rare_frames_lower_density_and_more_weight(trained_vae, density):
    config = SkewFitConfig(alpha=-1.0, density=density, importance_samples=4,
                           max_weight_ratio=50.0)
    frames = common_and_rare_frames()
    log_p = log_density(trained_vae, frames, config)
    assert log_p.shape == (COMMON + RARE,) and np.all(np.isfinite(log_p))
    assert np.median(log_p[COMMON:]) < np.median(log_p[:COMMON])
    weights = frame_weights(trained_vae, frames, config)
    assert weights[COMMON:].sum() > RARE / (COMMON + RARE)  # more than their 10 % share
    np.testing.assert_allclose(frame_weights(trained_vae, frames, SkewFitConfig()), 0.01)


def test_importance_sampling_is_seeded():
    vae = ConvVAE(VAE).eval()
    config = SkewFitConfig(alpha=-1.0, importance_samples=3)
    frames = common_and_rare_frames()[:8]
    np.testing.assert_array_equal(log_density(vae, frames, config, seed=3),
                                  log_density(vae, frames, config, seed=3))
    assert not np.array_equal(log_density(vae, frames, config, seed=3),
                              log_density(vae, frames, config, seed=4))


def test_alpha_zero_training_is_plain_fit():
    frames = common_and_rare_frames()
    torch.manual_seed(1)
    plain = ConvVAE(VAE)
    VAETrainer(plain, VAE).fit(frames, 5, progress=False, seed=2)
    torch.manual_seed(1)  # the same initial weights and reparameterisation noise
    skewed = ConvVAE(VAE)
    history = fit_skewed(VAETrainer(skewed, VAE), frames, 5, SkewFitConfig(), seed=2,
                         progress=False)
    assert len(history) == 5 and 'skew_effective_frames' not in history[-1]
    for mine, theirs in zip(skewed.state_dict().values(), plain.state_dict().values()):
        torch.testing.assert_close(mine, theirs)


def test_goals_only_skew_trains_the_vae_plainly_and_still_skews_the_goals(trained_vae):
    frames = common_and_rare_frames()
    config = SkewFitConfig(alpha=-1.0, density='latent_kde', skew_vae=False,
                           max_weight_ratio=50.0)
    assert config.enabled and not config.skews_vae
    torch.manual_seed(1)
    plain = ConvVAE(VAE)
    VAETrainer(plain, VAE).fit(frames, 4, progress=False, seed=2)
    torch.manual_seed(1)
    goals_only = ConvVAE(VAE)
    history = fit_skewed(VAETrainer(goals_only, VAE), frames, 4, config, seed=2,
                         progress=False)
    assert 'skew_effective_frames' not in history[-1]
    for mine, theirs in zip(goals_only.state_dict().values(), plain.state_dict().values()):
        torch.testing.assert_close(mine, theirs)
    goals = SkewedGoalSampler(config, np.random.default_rng(0))
    goals.fit(trained_vae, frames)
    # The rare tenth of the frames is drawn well over its share.
    assert goals.weights[COMMON:].sum() > 2 * RARE / len(frames)


def test_skewed_training_warms_up_then_draws_batches_by_weight(trained_vae):
    frames = common_and_rare_frames()
    config = SkewFitConfig(alpha=-1.0, density='latent_kde', warmup_fraction=0.5,
                           reweight_every=2, max_weight_ratio=50.0)
    trainer = VAETrainer(trained_vae, VAE)
    drawn = []
    step = trainer.train_step
    trainer.train_step = lambda batch: (drawn.append(batch), step(batch))[1]
    history = fit_skewed(trainer, frames, 6, config, progress=False)
    assert len(history) == 6 and len(drawn) == 6
    assert 'skew_effective_frames' not in history[2]  # the warm-up: uniform
    assert 0 < history[-1]['skew_effective_frames'] < len(frames)
    trained_vae.eval()


def test_goal_sampler_draws_latents_of_frames_by_weight(trained_vae):
    frames = common_and_rare_frames()
    config = SkewFitConfig(alpha=-1.0, max_weight_ratio=50.0, importance_samples=4)
    goals = SkewedGoalSampler(config, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match='fit'):
        goals(1)
    goals.fit(trained_vae, frames)
    drawn = goals(2000)
    assert drawn.shape == (2000, 4) and drawn.dtype == np.float32
    latents = encode_images(trained_vae, frames)[0]
    # Every goal is a frame's latent; the rare frames' share follows their weight.
    index = np.argmin(((drawn[:, None] - latents[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(drawn, latents[index], atol=1e-6)
    rare_share = np.mean(index >= COMMON)
    assert rare_share == pytest.approx(goals.weights[COMMON:].sum(), abs=0.04)
    assert rare_share > 0.15


def test_kde_density_is_highest_in_a_crowd():
    points = np.concatenate([np.zeros((20, 2)), np.array([[3.0, 3.0]])])
    log_p = kde_log_density(points + np.random.default_rng(0).normal(0, 0.1, points.shape))
    assert log_p[-1] < log_p[:-1].min()


def test_goal_sampler_scores_a_seeded_subset_of_many_frames(trained_vae):
    config = SkewFitConfig(alpha=-0.5, density='latent_kde', max_density_frames=30)
    goals = SkewedGoalSampler(config, np.random.default_rng(0))
    goals.fit(trained_vae, common_and_rare_frames())
    assert goals.latents.shape == (30, 4) and goals.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize('field, value', [('alpha', 0.5), ('alpha', -1.5), ('density', 'knn'),
                                          ('max_weight_ratio', 0.5), ('warmup_fraction', 1.0),
                                          ('importance_samples', 0), ('skew_vae', 'no')])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SkewFitConfig(**{field: value})


def crowd_and_outliers() -> np.ndarray:
    """90 latents in a tight crowd at the origin, 10 strung out far from it (the rare scenes)."""
    rng = np.random.default_rng(0)
    crowd = rng.normal(0.0, 0.1, (COMMON, 4))
    outliers = rng.normal(0.0, 0.1, (RARE, 4)) + np.linspace(2.0, 6.0, RARE)[:, None]
    return np.concatenate([crowd, outliers]).astype(np.float32)


def test_latent_weights_favour_rare_latents():
    latents = crowd_and_outliers()
    weights = latent_skew_weights(latents, -1.0, 50.0)
    assert weights.sum() == pytest.approx(1.0) and weights.max() <= 50.0 / len(latents) + 1e-9
    assert weights[COMMON:].sum() > 0.5  # 10 % of the latents, over half of the draws
    np.testing.assert_allclose(latent_skew_weights(latents, 0.0, 50.0), 0.01)
    np.testing.assert_allclose(latent_skew_weights(latents[:1], -1.0, 50.0), [1.0])


def empty_replay() -> GoalReplayBuffer:
    """Return a replay of 4 latents keeping 8x8 frames, no imagined goals of its own."""
    return GoalReplayBuffer(capacity=500, obs_dim=4, goal_dim=4, action_dim=2,
                            reward_fn=euclidean_latent_reward, prior_goal_sampler=None,
                            relabel=RelabelConfig(1.0, 0.0, 0.0), image_shape=(8, 8, 3))


def add_episode(buffer: GoalReplayBuffer, latents: np.ndarray) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    for step in range(len(latents) - 1):
        buffer.add_step(latents[step], np.zeros(2), latents[step + 1], latents[0], image=image,
                        next_image=image, episode_end=step == len(latents) - 2)


def test_skewed_replay_goals_draw_rare_latents_and_refit_when_the_replay_changes():
    buffer = empty_replay()
    replay = {'buffer': buffer}
    config = SkewFitConfig(alpha=-1.0, max_weight_ratio=50.0, reweight_every=20)
    goals = skewed_replay_latent_goals(lambda: replay['buffer'],
                                       lambda count: np.full((count, 4), 9.0, np.float32),
                                       np.random.default_rng(0), config)
    np.testing.assert_array_equal(goals(2), np.full((2, 4), 9.0))  # empty replay: the fallback
    latents = crowd_and_outliers()
    add_episode(buffer, latents)
    drawn = goals(2000)
    assert drawn.dtype == np.float32
    index = np.argmin(((drawn[:, None] - latents[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(drawn, latents[index], atol=1e-6)  # every goal a stored latent
    assert np.mean(index >= COMMON) > 0.4  # uniform draws would give 10 %
    # Re-encoded latents (a fine-tuned VAE): goals come from the new ones at once.
    buffer.refresh_latents(lambda frames: np.full((len(frames), 4), -3.0, np.float32))
    np.testing.assert_array_equal(goals(5), np.full((5, 4), -3.0))
    # New transitions, fewer than reweight_every: the fitted latents still serve.
    add_episode(buffer, np.full((11, 4), 5.0, np.float32))
    assert not np.any(goals(500) == 5.0)
    add_episode(buffer, np.full((11, 4), 5.0, np.float32))  # 20 new ones: refitted
    assert np.any(goals(500) == 5.0)
    replay['buffer'] = empty_replay()  # a restored replay
    add_episode(replay['buffer'], np.full((3, 4), 1.0, np.float32))
    np.testing.assert_array_equal(goals(3), np.ones((3, 4)))


@pytest.mark.parametrize('skew', [0.0, -1.0])
def test_hand_box_goals_never_rescan_the_replay_per_draw(skew):
    box = HandBox(low=(-0.05, 0.55), high=(0.05, 0.65))
    buffer = empty_replay()
    scans = []
    hands = buffer.hands
    buffer.hands = lambda: scans.append(1) or hands()
    fallback = lambda count: np.full((count, 4), 9.0, np.float32)  # noqa: E731
    rng = np.random.default_rng(0)
    goals = (replay_latent_goals(lambda: buffer, fallback, rng, box) if not skew else
             skewed_replay_latent_goals(lambda: buffer, fallback, rng,
                                        SkewFitConfig(alpha=skew), box))
    add_episode(buffer, crowd_and_outliers()[:5])  # no hands: none in the box
    for _ in range(100):  # one draw per TD3 update
        np.testing.assert_array_equal(goals(2), np.full((2, 4), 9.0))
    assert len(scans) == 1  # looked once; no new transition since
    add_episode(buffer, crowd_and_outliers()[:3])
    goals(2)
    assert len(scans) == 2  # a new transition: looked again
