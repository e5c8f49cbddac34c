"""Latent-space rewards of RIG, batched over a leading axis: reward_fn(achieved, goal)."""

import functools
from typing import Callable, Literal, Optional

import numpy as np

RewardKind = Literal['euclidean', 'mahalanobis']
REWARD_KINDS: tuple[str, ...] = ('euclidean', 'mahalanobis')
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def euclidean_latent_reward(achieved: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Return -||achieved - goal|| over the last axis (RIG's released reward)."""
    difference = np.asarray(achieved, dtype=np.float32) - np.asarray(goal, dtype=np.float32)
    return -np.linalg.norm(difference, axis=-1)


def mahalanobis_latent_reward(achieved: np.ndarray, goal: np.ndarray,
                              variance: np.ndarray) -> np.ndarray:
    """Return -sqrt(sum((achieved - goal)^2 / variance)) over the last axis.

    The RIG paper's form: with a diagonal Gaussian encoder, weighting each latent axis by its
    precision makes the reward a monotone function of the goal's log-likelihood under the
    encoder, so axes the encoder is unsure of count less. variance is the encoder variance
    (exp of its log-variance), of shape (latent_dim,) or broadcastable to achieved. Bind it
    with functools.partial to get a reward_fn(achieved, goal).
    """
    variance = np.asarray(variance, dtype=np.float32)
    if not (variance > 0).all():
        raise ValueError('variance must be positive')
    difference = np.asarray(achieved, dtype=np.float32) - np.asarray(goal, dtype=np.float32)
    return -np.sqrt(np.sum(difference * difference / variance, axis=-1))


def latent_reward_fn(kind: str, variance: Optional[np.ndarray] = None) -> RewardFn:
    """Return the reward_fn(achieved, goal) of `kind`; 'mahalanobis' needs the variance.

    variance: the encoder's posterior variance per latent axis (see mahalanobis_latent_reward).
    """
    if kind == 'euclidean':
        return euclidean_latent_reward
    if kind != 'mahalanobis':
        raise ValueError(f'reward must be one of {REWARD_KINDS}, got {kind!r}')
    if variance is None:
        raise ValueError("the 'mahalanobis' reward needs the encoder's latent variance")
    variance = np.asarray(variance, dtype=np.float32)
    if not (variance > 0).all():
        raise ValueError('variance must be positive')
    return functools.partial(mahalanobis_latent_reward, variance=variance)
