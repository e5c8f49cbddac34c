"""Exploration of continuous actions: its config and noise processes (numpy, per episode)."""

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

ExplorationKind = Literal['ou', 'gaussian']
EXPLORATION_KINDS: tuple[str, ...] = ('ou', 'gaussian')


@dataclass(frozen=True)
class ExplorationConfig:
    """Exploration noise added to actions while practising; the defaults are RIG's.

    The field names are the policy node's parameter names (PolicyConfig extends this config).
    """

    exploration: ExplorationKind = 'ou'
    """Noise process: 'ou' (Ornstein-Uhlenbeck, RIG's) or 'gaussian' (white)."""
    exploration_sigma: float = 0.2
    """Scale of the noise, in normalised action units."""
    ou_theta: float = 0.15
    """Mean reversion of the Ornstein-Uhlenbeck process, in (0, 1]."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        if self.exploration not in EXPLORATION_KINDS:
            raise ValueError(f'exploration must be one of {EXPLORATION_KINDS}, '
                             f'got {self.exploration!r}')
        if not self.exploration_sigma >= 0:
            raise ValueError(f'exploration_sigma must be >= 0, got {self.exploration_sigma!r}')
        if not 0 < self.ou_theta <= 1:
            raise ValueError(f'ou_theta must be in (0, 1], got {self.ou_theta!r}')


class GaussianNoise:
    """Independent N(0, sigma^2) noise per action dimension and step."""

    def __init__(self, sigma: float, rng: np.random.Generator) -> None:
        self.sigma = sigma
        self._rng = rng

    def reset(self) -> None:
        """Do nothing: white noise has no state."""

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """Return one noise sample of the given shape."""
        return self.sigma * self._rng.standard_normal(shape)


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise x <- x - theta * x + sigma * N(0, 1), started at 0.

    RIG explored with this process (sigma 0.2, theta 0.15, unit time step): correlated pushes
    travel further than white noise under velocity control.
    """

    def __init__(self, sigma: float, theta: float, rng: np.random.Generator) -> None:
        self.sigma = sigma
        self.theta = theta
        self._rng = rng
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Restart the process at zero; call at every episode start."""
        self._state = None

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """Advance one step and return the state; a new shape restarts the process."""
        if self._state is None or self._state.shape != shape:
            self._state = np.zeros(shape)
        self._state += -self.theta * self._state + self.sigma * self._rng.standard_normal(shape)
        return self._state.copy()


Noise = Union[GaussianNoise, OrnsteinUhlenbeckNoise]


def make_noise(config: ExplorationConfig, rng: np.random.Generator) -> Noise:
    """Return the noise process `config` asks for, drawing from `rng`."""
    if config.exploration == 'ou':
        return OrnsteinUhlenbeckNoise(config.exploration_sigma, config.ou_theta, rng)
    return GaussianNoise(config.exploration_sigma, rng)
