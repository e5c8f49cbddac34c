"""A simulated Sawyer arm that behaves like intera, for tests: `FakeSawyerArm` and `FakeLimb`.

`FakeSawyerArm` integrates joint commands with the driver's kinematic model, but acts like the
robot rather than like the driver hopes:
- velocity mode only moves while commands keep coming: a command older than
  `command_timeout_s` is dropped and the arm holds position (intera's fallback);
- commanded velocities are clipped to the URDF joint velocity limits and followed with a lag
  (first order, `velocity_lag_s`); joints stop at their position limits;
- position mode moves each joint toward its target at `position_speed_ratio` of its limit;
- commands naming unknown joints, other modes or non-finite values are refused (counted);
- joint states carry `head_pan` too, ahead of the arm joints, as on the robot.
`FakeLimb` puts intera_interface.Limb's API on top of one (simulated time, no ROS).
"""

from __future__ import annotations

from collections import namedtuple
import math
from typing import Mapping, Optional, Sequence

import numpy as np

from rig_ros.robot.backends import JointCommandPayload, POSITION_MODE, VELOCITY_MODE
from rig_ros.robot.kinematics import (
    JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, JOINT_VELOCITY_LIMITS, Pose, SawyerKinematics)

NEUTRAL_JOINT_POSITIONS = (0.0, -1.18, 0.0, 2.18, 0.0, 0.57, 3.3161)
STATE_JOINT_NAMES = ('head_pan',) + JOINT_NAMES
MAX_STEP_S = 0.05


class FakeSawyerArm:
    """Joint-level simulation of the Sawyer's right arm under intera-style commands."""

    def __init__(self, joint_positions: Sequence[float] = NEUTRAL_JOINT_POSITIONS, *,
                 command_timeout_s: float = 0.2, velocity_lag_s: float = 0.02,
                 position_speed_ratio: float = 0.3, now: float = 0.0) -> None:
        self.kinematics = SawyerKinematics(tool_offset_m=0.0)  # intera reports right_hand
        self.q = np.clip(np.array(joint_positions, dtype=float), JOINT_LOWER, JOINT_UPPER)
        self.qdot = np.zeros(7)
        self.command_timeout_s = command_timeout_s
        self.velocity_lag_s = velocity_lag_s
        self.position_speed_ratio = position_speed_ratio
        self._mode: Optional[int] = None
        self._targets: dict[int, float] = {}
        self._command_time = -math.inf
        self._time = now
        self.refused = 0
        self.commands = 0
        self.timeouts = 0
        self._timed_out = True

    @property
    def time(self) -> float:
        """The arm's clock (seconds)."""
        return self._time

    def command(self, payload: JointCommandPayload, now: float) -> bool:
        """Take one JointCommand; False (and counted) when intera would refuse it."""
        values = payload.velocity if payload.mode == VELOCITY_MODE else payload.position
        if (payload.mode not in (VELOCITY_MODE, POSITION_MODE) or len(values) != len(
                payload.names) or any(name not in JOINT_NAMES for name in payload.names)
                or not all(math.isfinite(v) for v in values)):
            self.refused += 1
            return False
        self._mode = payload.mode
        self._targets = {JOINT_NAMES.index(name): float(value)
                         for name, value in zip(payload.names, values)}
        self._command_time = now
        self._timed_out = False
        self.commands += 1
        return True

    def step(self, now: float) -> None:
        """Advance the arm to `now`, in sub-steps of at most MAX_STEP_S.

        A late call (the fake's process starved of CPU) loses no motion: the arm, like the
        real one, kept moving meanwhile, and a command timeout inside the gap takes effect at
        its time.
        """
        while now > self._time:
            self._advance(min(now, self._time + MAX_STEP_S))

    def _advance(self, now: float) -> None:
        dt = now - self._time
        self._time = now
        target = np.zeros(7)
        if now - self._command_time > self.command_timeout_s:
            if not self._timed_out:
                self.timeouts += 1
                self._timed_out = True
            self._mode = None  # hold position
        elif self._mode == VELOCITY_MODE:
            for index, value in self._targets.items():
                target[index] = value
        elif self._mode == POSITION_MODE:
            for index, value in self._targets.items():
                target[index] = 5.0 * (value - self.q[index])
            target = np.clip(target, -self.position_speed_ratio * JOINT_VELOCITY_LIMITS,
                             self.position_speed_ratio * JOINT_VELOCITY_LIMITS)
        target = np.clip(target, -JOINT_VELOCITY_LIMITS, JOINT_VELOCITY_LIMITS)
        blend = 1.0 - math.exp(-dt / self.velocity_lag_s) if self.velocity_lag_s > 0 else 1.0
        self.qdot = self.qdot + (target - self.qdot) * blend
        self.q = self.q + self.qdot * dt
        at_limit = (self.q <= JOINT_LOWER) | (self.q >= JOINT_UPPER)
        self.q = np.clip(self.q, JOINT_LOWER, JOINT_UPPER)
        self.qdot[at_limit] = 0.0

    def joint_state(self) -> tuple[tuple[str, ...], list[float], list[float]]:
        """Return (names, positions, velocities) as intera publishes them, head_pan first."""
        return (STATE_JOINT_NAMES, [0.0] + self.q.tolist(), [0.0] + self.qdot.tolist())

    def endpoint(self) -> Pose:
        """Return the right_hand pose (intera's endpoint_state)."""
        return self.kinematics.right_hand_pose(self.q)


Point = namedtuple('Point', ['x', 'y', 'z'])
Quaternion = namedtuple('Quaternion', ['x', 'y', 'z', 'w'])


class FakeLimb:
    """A stand-in with intera_interface.Limb's API over a `FakeSawyerArm` in simulated time.

    Time moves only through `advance(dt)` (and inside `move_to_joint_positions`, which blocks
    like intera's while the arm moves).
    """

    def __init__(self, arm: Optional[FakeSawyerArm] = None, step_s: float = 0.01) -> None:
        self.arm = arm if arm is not None else FakeSawyerArm()
        self.step_s = step_s

    def advance(self, duration_s: float) -> None:
        """Let `duration_s` of simulated time pass."""
        end = self.arm.time + duration_s
        while self.arm.time < end - 1e-12:
            self.arm.step(min(self.arm.time + self.step_s, end))

    def joint_names(self) -> list[str]:
        """Return the arm's joint names."""
        return list(JOINT_NAMES)

    def joint_angles(self) -> dict[str, float]:
        """Return the joint angles by name."""
        return dict(zip(JOINT_NAMES, self.arm.q.tolist()))

    def joint_velocities(self) -> dict[str, float]:
        """Return the joint velocities by name."""
        return dict(zip(JOINT_NAMES, self.arm.qdot.tolist()))

    def endpoint_pose(self) -> dict[str, tuple]:
        """Return {'position': Point, 'orientation': Quaternion} of right_hand."""
        pose = self.arm.endpoint()
        return {'position': Point(*pose.position.tolist()),
                'orientation': Quaternion(*pose.quaternion_xyzw.tolist())}

    def set_command_timeout(self, timeout: float) -> None:
        """Set the velocity/position command timeout (s)."""
        self.arm.command_timeout_s = float(timeout)

    def set_joint_velocities(self, velocities: Mapping[str, float]) -> None:
        """Velocity-mode command, valid for the command timeout."""
        names = tuple(velocities)
        self.arm.command(JointCommandPayload(VELOCITY_MODE, names, velocity=tuple(
            velocities[name] for name in names)), self.arm.time)

    def set_joint_positions(self, positions: Mapping[str, float]) -> None:
        """Position-mode command, valid for the command timeout."""
        names = tuple(positions)
        self.arm.command(JointCommandPayload(POSITION_MODE, names, position=tuple(
            positions[name] for name in names)), self.arm.time)

    def move_to_joint_positions(self, positions: Mapping[str, float], timeout: float = 15.0,
                                threshold: float = 0.008726646) -> None:
        """Re-send position commands until every joint is within `threshold` (blocking)."""
        end = self.arm.time + timeout
        while self.arm.time < end:
            angles = self.joint_angles()
            if all(abs(angles[name] - value) < threshold for name, value in positions.items()):
                return
            self.set_joint_positions(positions)
            self.advance(self.step_s)
