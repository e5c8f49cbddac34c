"""Safety for end-effector velocity commands: workspace box, speed cap, watchdog, stop latch.

`SafetyFilter.filter(command, position, now)` returns the velocity the arm may take:
- zero while inactive, after a stop (latched until `rearm`), for a non-finite command, and
  when the last command is older than `watchdog_s`;
- the command scaled down (direction kept) to `max_speed_m_s`;
- each axis clipped so that position + v * horizon_s stays inside the box shrunk by
  `margin_m` (predictive: the step never crosses a wall); outside that box, components that
  point further out are zeroed, so the only motion allowed is back in.
Pure logic: the caller passes monotonic times and the tool position from forward kinematics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import enum
import math
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the driver, per task, in the robot's base frame.

    box_low: (x, y, z) lower corner of the tool's workspace box (m, base frame).
    box_high: (x, y, z) upper corner.
    margin_m: the filter keeps the tool this far inside the box (tracking error allowance).
    max_speed_m_s: cap of the tool speed (norm of the linear velocity).
    watchdog_s: a command older than this is replaced by zero.
    horizon_s: prediction time of the box check (at least one control period).
    reset_joint_positions: joint angles (rad, right_j0..right_j6) that robot/reset moves to.
    """

    box_low: tuple[float, float, float] = (0.45, -0.2, 0.05)
    box_high: tuple[float, float, float] = (0.8, 0.2, 0.35)
    margin_m: float = 0.01
    max_speed_m_s: float = 0.2
    watchdog_s: float = 0.2
    horizon_s: float = 0.05
    reset_joint_positions: tuple[float, ...] = field(
        default=(0.0, -0.6, 0.0, 2.0, 0.0, 0.2, 1.57))

    def __post_init__(self) -> None:
        """Reject inconsistent limits, naming the field."""
        for name in ('box_low', 'box_high'):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ValueError(f'{name} must be 3 finite numbers (m), got {values!r}')
        if not all(high - low > 2 * self.margin_m
                   for low, high in zip(self.box_low, self.box_high)):
            raise ValueError(f'box_low {self.box_low} must be below box_high {self.box_high} '
                             f'by more than twice margin_m on every axis')
        for name in ('max_speed_m_s', 'watchdog_s', 'horizon_s'):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        if not math.isfinite(self.margin_m) or self.margin_m < 0:
            raise ValueError(f'margin_m must be a non-negative number, got {self.margin_m!r}')
        if self.max_speed_m_s > 0.5:
            raise ValueError(f'max_speed_m_s must be at most 0.5 m/s, got {self.max_speed_m_s}')
        if len(self.reset_joint_positions) != 7 or not all(
                math.isfinite(v) for v in self.reset_joint_positions):
            raise ValueError('reset_joint_positions must be 7 finite joint angles (rad), got '
                             f'{self.reset_joint_positions!r}')

    @property
    def inner_low(self) -> np.ndarray:
        """Lower corner of the box the filter keeps the tool in (margin applied)."""
        return np.array(self.box_low) + self.margin_m

    @property
    def inner_high(self) -> np.ndarray:
        """Upper corner of that box."""
        return np.array(self.box_high) - self.margin_m

    def contains(self, position: Sequence[float], tolerance_m: float = 0.0) -> bool:
        """Return True when `position` is inside the (outer) box, within `tolerance_m`."""
        p = np.asarray(position, dtype=float)
        return bool(np.all(p >= np.array(self.box_low) - tolerance_m)
                    and np.all(p <= np.array(self.box_high) + tolerance_m))


class Verdict(enum.Enum):
    """Why the filter let a command through or replaced it."""

    OK = 'ok'
    CLIPPED = 'clipped'  # speed or box changed the command
    INACTIVE = 'inactive'
    STOPPED = 'stopped'
    STALE = 'stale'
    NO_COMMAND = 'no command'
    INVALID = 'invalid'


@dataclass(frozen=True)
class Filtered:
    """A filtered command and why it is what it is."""

    velocity: np.ndarray
    verdict: Verdict


class SafetyFilter:
    """Clips end-effector velocity commands to the workspace box and speed, with a watchdog."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self._active = False
        self._stopped = False
        self._command: Optional[np.ndarray] = None
        self._command_time = -math.inf

    @property
    def active(self) -> bool:
        """Whether commands may move the arm."""
        return self._active and not self._stopped

    @property
    def stopped(self) -> bool:
        """Whether the stop latch is set."""
        return self._stopped

    def set_active(self, active: bool) -> None:
        """Allow or forbid motion; activating also clears the stop latch (re-arm)."""
        self._active = bool(active)
        if active:
            self._stopped = False
        self._command = None

    def stop(self) -> None:
        """Latch a stop: zero until `set_active(True)` re-arms."""
        self._stopped = True
        self._command = None

    def command(self, velocity: Sequence[float], now: float) -> bool:
        """Store a commanded linear velocity (m/s, base frame); False if not finite/3-D."""
        v = np.asarray(velocity, dtype=float)
        if v.shape != (3,) or not np.all(np.isfinite(v)):
            return False
        self._command, self._command_time = v.copy(), now
        return True

    def current(self, position: Sequence[float], now: float) -> Filtered:
        """Filter the latest command at the tool `position` and time `now`."""
        if self._stopped:
            return Filtered(np.zeros(3), Verdict.STOPPED)
        if not self._active:
            return Filtered(np.zeros(3), Verdict.INACTIVE)
        if self._command is None:
            return Filtered(np.zeros(3), Verdict.NO_COMMAND)
        if now - self._command_time > self.config.watchdog_s:
            return Filtered(np.zeros(3), Verdict.STALE)
        return self.clip(self._command, position)

    def clip(self, velocity: Sequence[float], position: Sequence[float]) -> Filtered:
        """Cap the speed and keep position + v * horizon inside the inner box."""
        v = np.asarray(velocity, dtype=float)
        p = np.asarray(position, dtype=float)
        finite = bool(np.all(np.isfinite(v)) and np.all(np.isfinite(p)))
        if v.shape != (3,) or p.shape != (3,) or not finite:
            return Filtered(np.zeros(3), Verdict.INVALID)
        clipped = v.copy()
        speed = float(np.linalg.norm(clipped))
        if speed > self.config.max_speed_m_s:
            clipped *= self.config.max_speed_m_s / speed
        horizon = self.config.horizon_s
        # Inside: the most each axis may move in one horizon; outside: only back in.
        upper = np.maximum((self.config.inner_high - p) / horizon, 0.0)
        lower = np.minimum((self.config.inner_low - p) / horizon, 0.0)
        clipped = np.clip(clipped, lower, upper)
        changed = not np.allclose(clipped, v, rtol=0.0, atol=1e-12)
        return Filtered(clipped, Verdict.CLIPPED if changed else Verdict.OK)
