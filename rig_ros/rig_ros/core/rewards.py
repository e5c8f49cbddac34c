"""Latent-space rewards of RIG, batched over a leading axis: reward_fn(achieved, goal)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Literal, Optional

import numpy as np

RewardKind = Literal['euclidean', 'mahalanobis']
REWARD_KINDS: tuple[str, ...] = ('euclidean', 'mahalanobis')
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
LatentDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""distance(achieved, goal): a non-negative distance between latents over the last axis."""


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


def distance_latent_reward(achieved: np.ndarray, goal: np.ndarray,
                           distance: LatentDistance) -> np.ndarray:
    """Return -distance(achieved, goal): a reward of another latent distance."""
    return -np.asarray(distance(achieved, goal), dtype=np.float32)


def quadratic_features(latents: np.ndarray) -> np.ndarray:
    """Return [1, z, z_i z_j for i <= j] over the last axis of `latents`."""
    latents = np.asarray(latents, dtype=np.float64)
    upper = np.triu_indices(latents.shape[-1])
    products = latents[..., upper[0]] * latents[..., upper[1]]
    return np.concatenate([np.ones(latents.shape[:-1] + (1,)), latents, products], axis=-1)


@dataclasses.dataclass(frozen=True)
class PositionProbe:
    """Quadratic regression from latents to true positions (metres): a simulator's reward ruler.

    `PositionProbe.fit(latents, positions)` on frames whose positions are known; calling it
    maps latents to positions about the frames' mean, in units of their spread (the mean over
    coordinates of their standard deviations: one unit for all, so the reward is about the
    latent distance's size, and an observation is centred as the oracle's state is). Its
    `distance` then counts centimetres of hand and of puck alike, as the state oracle's
    shared-spread reward does. Only a simulator knows where its puck lies: a
    diagnostic that separates RIG's reward from its latent observation.
    """

    weights: np.ndarray
    """(features, positions) of `quadratic_features`."""
    holdout_error_m: np.ndarray
    """Median absolute error per position on the fifth of the frames held out of the fit."""
    spread_m: float
    """The frames' spread: one unit of the probe's output."""
    mean_m: np.ndarray
    """The frames' mean position: the origin of the probe's output."""

    @classmethod
    def fit(cls, latents: np.ndarray, positions: np.ndarray, ridge: float = 1e-4,
            seed: int = 0) -> PositionProbe:
        """Fit on four fifths of the frames (ridge-regularised) and measure on the rest.

        Raises ValueError for mismatched or non-finite arrays, positions that never change,
        or too few frames for the features.
        """
        latents = np.asarray(latents, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        if latents.ndim != 2 or positions.ndim != 2 or len(latents) != len(positions):
            raise ValueError(f'latents (N, latent_dim) and positions (N, P) must pair up, got '
                             f'{latents.shape} and {positions.shape}')
        if not (np.isfinite(latents).all() and np.isfinite(positions).all()):
            raise ValueError('latents and positions must be finite')
        spread = float(positions.std(axis=0).mean())
        if not spread > 0:
            raise ValueError('the positions never change: nothing to measure distances in')
        features = quadratic_features(latents)
        order = np.random.default_rng(seed).permutation(len(latents))
        held, fitted = order[:len(order) // 5], order[len(order) // 5:]
        if len(fitted) < 2 * features.shape[1] or not len(held):
            raise ValueError(f'{len(latents)} frames are too few to fit {features.shape[1]} '
                             'quadratic features of the latent')

        def solve(rows: np.ndarray) -> np.ndarray:
            x = features[rows]
            gram = x.T @ x + ridge * len(rows) * np.eye(x.shape[1])
            return np.linalg.solve(gram, x.T @ positions[rows])

        error = np.median(np.abs(features[held] @ solve(fitted) - positions[held]), axis=0)
        return cls(solve(np.arange(len(latents))).astype(np.float32), error, spread,
                   positions.mean(axis=0).astype(np.float32))

    def positions(self, latents: np.ndarray) -> np.ndarray:
        """Return the positions in metres, (..., P), read from latents (..., latent_dim)."""
        return (quadratic_features(latents) @ self.weights).astype(np.float32)

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        """Return the positions about the frames' mean in units of their spread (as measured)."""
        return (self.positions(latents) - self.mean_m) / np.float32(self.spread_m)

    def distance(self, achieved: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Return the distance between the positions read from two latents (spread units)."""
        return np.linalg.norm(self(achieved) - self(goal), axis=-1)


def latent_reward_fn(kind: str, variance: Optional[np.ndarray] = None,
                     distance: Optional[LatentDistance] = None) -> RewardFn:
    """Return the reward_fn(achieved, goal) of `kind`; 'mahalanobis' needs the variance.

    variance: the encoder's posterior variance per latent axis (see mahalanobis_latent_reward).
    distance: with 'euclidean', another distance between latents replaces the straight line
    (`PositionProbe.distance`); None: the straight line.
    """
    if kind not in REWARD_KINDS:
        raise ValueError(f'reward must be one of {REWARD_KINDS}, got {kind!r}')
    if distance is not None:
        if kind != 'euclidean':
            raise ValueError(f"a latent distance goes with the 'euclidean' reward, not {kind!r}")
        return functools.partial(distance_latent_reward, distance=distance)
    if kind == 'euclidean':
        return euclidean_latent_reward
    if variance is None:
        raise ValueError("the 'mahalanobis' reward needs the encoder's latent variance")
    variance = np.asarray(variance, dtype=np.float32)
    if not (variance > 0).all():
        raise ValueError('variance must be positive')
    return functools.partial(mahalanobis_latent_reward, variance=variance)
