"""Where the hand was: a box of hand positions, and the hand at a camera frame's stamp.

The robot's hand position comes on `robot/state` (the driver's or the sim's), apart from the
camera frames. `HandTrack` keeps the recent positions so that a frame (by its stamp) gets the
hand it was taken with; `HandBox` says whether a hand lies where a task's goals put it. The
goal scheduler and the learner keep frames' goals to frames with the hand in such a box
(`frame_goals_hand_box`); the policy sends each transition's hands with its frames.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
import math
from typing import Optional, Sequence

import numpy as np

HAND_SIZE = 3  # x, y, z of robot/state


@dataclass(frozen=True)
class HandBox:
    """A box of hand positions: x and y in the robot's base frame, metres, edges included."""

    low: tuple[float, float]
    """Lowest (x, y) of the box, metres."""
    high: tuple[float, float]
    """Highest (x, y) of the box, metres."""

    def __post_init__(self) -> None:
        """Refuse corners that do not span a box."""
        corners = (*self.low, *self.high)
        if (len(self.low) != 2 or len(self.high) != 2
                or not all(math.isfinite(value) for value in corners)
                or not all(low < high for low, high in zip(self.low, self.high))):
            raise ValueError(f'hand box low {list(self.low)} must lie below high '
                             f'{list(self.high)} in x and y (metres)')

    def contains(self, hand: Sequence[float]) -> bool:
        """Whether a hand position (x, y[, z]) lies in the box."""
        return bool(self.inside(np.asarray(hand, np.float64)[None])[0])

    def inside(self, hands: np.ndarray) -> np.ndarray:
        """Return which hand positions (N, 2 or 3) lie in the box; unknown (NaN) ones do not."""
        xy = np.asarray(hands, np.float64)[:, :2]
        with np.errstate(invalid='ignore'):
            return np.all((xy >= self.low) & (xy <= self.high), axis=1)


class HandTrack:
    """The hand's recent positions by stamp, to find the one a camera frame was taken with."""

    def __init__(self, size: int = 100) -> None:
        self._positions: collections.deque = collections.deque(maxlen=size)

    def add(self, stamp_s: float, hand: Sequence[float]) -> None:
        """Keep a hand position (robot/state) of time `stamp_s`; non-finite ones are dropped."""
        position = np.asarray(hand, np.float64)
        if math.isfinite(stamp_s) and np.all(np.isfinite(position)):
            self._positions.append((stamp_s, position))

    def at(self, stamp_s: float, tolerance_s: float) -> Optional[np.ndarray]:
        """Return the kept position nearest in time to `stamp_s`, if within `tolerance_s`."""
        best = min(self._positions, key=lambda kept: abs(kept[0] - stamp_s), default=None)
        if best is None or abs(best[0] - stamp_s) > tolerance_s:
            return None
        return best[1]


def hand_or_unknown(hand: Optional[np.ndarray]) -> np.ndarray:
    """Return a transition's hand as HAND_SIZE float32 values, NaN when unknown or malformed."""
    values = None if hand is None else np.asarray(hand, np.float32).ravel()
    if values is None or values.size != HAND_SIZE:
        return np.full(HAND_SIZE, np.nan, np.float32)
    return values
