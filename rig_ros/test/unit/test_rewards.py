"""Latent rewards: values, batching and the Mahalanobis form."""

import numpy as np
import pytest

from rig_ros.core.rewards import euclidean_latent_reward, mahalanobis_latent_reward


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
