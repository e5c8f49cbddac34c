"""Exploration noise processes for continuous actions (numpy, stateful per episode)."""

import numpy as np


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
