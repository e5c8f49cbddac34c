"""Latent rewards: values, batching, the Mahalanobis form, the position probe, the choice."""

import numpy as np
import pytest

from rig_ros.core.rewards import (
    euclidean_latent_reward, latent_reward_fn, mahalanobis_latent_reward,
    PositionProbe, quadratic_features)


def test_euclidean_is_negative_distance_per_row():
    achieved = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    goal = np.array([[0.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    np.testing.assert_allclose(euclidean_latent_reward(achieved, goal), [0.0, -5.0, -1.0])


def test_mahalanobis_with_unit_variance_is_euclidean():
    rng = np.random.default_rng(0)
    achieved, goal = rng.standard_normal((2, 16, 4))
    np.testing.assert_allclose(mahalanobis_latent_reward(achieved, goal, np.ones(4)),
                               euclidean_latent_reward(achieved, goal), rtol=1e-5)


def test_mahalanobis_weighs_axes_by_precision():
    achieved = np.array([[2.0, 2.0], [2.0, 2.0]])
    goal = np.zeros((2, 2))
    # Per-sample variances broadcast; an uncertain axis counts less.
    variance = np.array([[4.0, 4.0], [1.0, 4.0]])
    np.testing.assert_allclose(mahalanobis_latent_reward(achieved, goal, variance),
                               [-np.sqrt(2.0), -np.sqrt(5.0)], rtol=1e-6)


def test_mahalanobis_rejects_non_positive_variance():
    with pytest.raises(ValueError, match='variance'):
        mahalanobis_latent_reward(np.zeros((1, 2)), np.zeros((1, 2)), np.array([1.0, 0.0]))


def test_reward_fn_by_kind():
    rng = np.random.default_rng(1)
    achieved, goal = rng.standard_normal((2, 8, 3))
    assert latent_reward_fn('euclidean') is euclidean_latent_reward
    variance = np.array([1.0, 4.0, 0.25])
    np.testing.assert_allclose(latent_reward_fn('mahalanobis', variance)(achieved, goal),
                               mahalanobis_latent_reward(achieved, goal, variance))
    with pytest.raises(ValueError, match='variance'):
        latent_reward_fn('mahalanobis')
    with pytest.raises(ValueError, match='reward'):
        latent_reward_fn('manhattan')


def test_quadratic_features_are_one_the_latent_and_its_products():
    features = quadratic_features(np.array([[2.0, 3.0]]))
    np.testing.assert_allclose(features, [[1.0, 2.0, 3.0, 4.0, 6.0, 9.0]])
    assert quadratic_features(np.zeros((4, 5, 3))).shape == (4, 5, 10)


def curved_latents(positions: np.ndarray) -> np.ndarray:
    """Return a latent that bends positions into five coordinates (one of them quadratic)."""
    x, y = positions[:, 0], positions[:, 1]
    return np.stack([x + y, x - 2 * y, x * x, 0.5 * y, x * y + y], axis=1)


def test_position_probe_reads_positions_a_latent_encodes_quadratically():
    rng = np.random.default_rng(0)
    positions = rng.uniform(-1.0, 1.0, (400, 2)) + [0.0, 0.6]
    probe = PositionProbe.fit(curved_latents(positions), positions)
    assert probe.holdout_error_m.max() < 1e-3  # the ridge term leaves a small bias
    other = rng.uniform(-1.0, 1.0, (20, 2)) + [0.0, 0.6]
    np.testing.assert_allclose(probe.positions(curved_latents(other)), other, atol=2e-3)
    # Its output is centred on the frames and in units of their spread (as the oracle's
    # state): the reward measures positions' distance.
    assert probe.spread_m == pytest.approx(positions.std(axis=0).mean())
    np.testing.assert_allclose(probe(curved_latents(positions)).mean(axis=0), 0.0, atol=1e-2)
    np.testing.assert_allclose(probe(curved_latents(other)),
                               (other - positions.mean(axis=0)) / probe.spread_m, atol=1e-2)
    a, b = curved_latents(other[:10]), curved_latents(other[10:])
    np.testing.assert_allclose(
        latent_reward_fn('euclidean', distance=probe.distance)(a, b),
        -np.linalg.norm(other[:10] - other[10:], axis=1) / probe.spread_m, atol=1e-2)
    # A latent that hides one coordinate cannot be read: the held-out error says so.
    blind = PositionProbe.fit(positions[:, :1] + 0.0 * positions[:, 1:], positions)
    assert blind.holdout_error_m[1] > 0.3


def test_position_probe_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match='pair up'):
        PositionProbe.fit(np.zeros((10, 3)), np.zeros((9, 2)))
    with pytest.raises(ValueError, match='finite'):
        PositionProbe.fit(np.full((100, 2), np.nan), np.zeros((100, 2)))
    with pytest.raises(ValueError, match='too few'):
        PositionProbe.fit(np.ones((20, 8)), np.arange(40.0).reshape(20, 2))
    with pytest.raises(ValueError, match='never change'):
        PositionProbe.fit(np.random.default_rng(0).standard_normal((100, 2)), np.ones((100, 2)))


def test_reward_fn_with_another_distance_is_its_negative():
    rng = np.random.default_rng(2)
    achieved, goal = rng.standard_normal((2, 8, 3))
    double = latent_reward_fn(
        'euclidean', distance=lambda a, g: 2 * np.linalg.norm(a - g, axis=-1))
    np.testing.assert_allclose(double(achieved, goal),
                               2 * euclidean_latent_reward(achieved, goal), rtol=1e-5)
    with pytest.raises(ValueError, match='latent distance'):
        latent_reward_fn('mahalanobis', np.ones(3), distance=lambda a, g: a)
