"""Latent rewards: values, batching, the Mahalanobis form and the choice by kind."""

import numpy as np
import pytest

from rig_ros.core.rewards import (
    euclidean_latent_reward, latent_reward_fn, mahalanobis_latent_reward)


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
