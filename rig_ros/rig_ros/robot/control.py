"""End-effector velocity -> joint velocities: damped least squares with joint limits.

`dls_joint_velocities` solves J qdot = twist with damped least squares,
qdot = J^T (J J^T + lambda^2 I)^-1 twist, where lambda grows as the arm nears a singularity
(measured by the smallest singular value of J, Nakamura-Hanafusa/Chiaverini style): no damping
away from singularities (exact tracking), up to `max_damping` at one.
`limit_joint_velocities` then scales the whole vector (never per joint, so the end-effector
direction is kept) to respect joint velocity limits and to stop short of joint position limits.
`EEVelocityController` does both for a 6-D twist built from a commanded linear velocity plus
proportional terms that hold the tool's height (planar tasks) and orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Optional

import numpy as np

from rig_ros.robot.kinematics import (
    JOINT_LOWER, JOINT_UPPER, JOINT_VELOCITY_LIMITS, Pose, rotation_error, SawyerKinematics)


def dls_joint_velocities(jacobian: np.ndarray, twist: np.ndarray, *,
                         singular_threshold: float = 0.05,
                         max_damping: float = 0.05) -> np.ndarray:
    """Return joint velocities for a task-space `twist` by damped least squares.

    singular_threshold: smallest singular value of J below which damping starts.
    max_damping: damping lambda when that singular value reaches zero.
    """
    jacobian = np.asarray(jacobian, dtype=float)
    twist = np.asarray(twist, dtype=float)
    smallest = float(np.linalg.svd(jacobian, compute_uv=False)[-1])
    if smallest >= singular_threshold:
        damping_sq = 0.0
    else:
        damping_sq = (1.0 - (smallest / singular_threshold) ** 2) * max_damping ** 2
    rows = jacobian.shape[0]
    return jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping_sq * np.eye(rows),
                                        twist)


def limit_joint_velocities(joint_velocities: np.ndarray, joint_angles: np.ndarray, *,
                           velocity_limits: np.ndarray = JOINT_VELOCITY_LIMITS,
                           lower: np.ndarray = JOINT_LOWER, upper: np.ndarray = JOINT_UPPER,
                           margin_rad: float = 0.05, horizon_s: float = 0.1) -> np.ndarray:
    """Scale the whole vector down to joint velocity limits and away from position limits.

    A joint within `margin_rad` of a position limit (or past it) gets no velocity towards it:
    then the whole vector is zeroed, which keeps direction trivially and lets the operator
    reset. Elsewhere the scale keeps every joint `horizon_s` of motion short of the margin.
    """
    qdot = np.asarray(joint_velocities, dtype=float)
    q = np.asarray(joint_angles, dtype=float)
    if not np.all(np.isfinite(qdot)):
        return np.zeros_like(qdot)
    scale = 1.0
    peak = np.max(np.abs(qdot) / velocity_limits)
    if peak > 1.0:
        scale = 1.0 / peak
    room_up = (upper - margin_rad) - q
    room_down = q - (lower + margin_rad)
    for i, velocity in enumerate(qdot):
        room = room_up[i] if velocity > 0 else room_down[i]
        if velocity == 0.0:
            continue
        if room <= 0.0:
            return np.zeros_like(qdot)
        scale = min(scale, room / (abs(velocity) * horizon_s))
    return qdot * min(scale, 1.0)


@dataclass(frozen=True)
class ControllerConfig:
    """How commanded end-effector velocities become joint velocities.

    singular_threshold: smallest singular value of the 6x7 Jacobian where damping starts.
    max_damping: damping at a singularity.
    height_gain: 1/s, pull of the tool back to the held height (planar commands).
    orientation_gain: 1/s, pull of the tool back to the held orientation.
    max_angular_speed: rad/s cap of the orientation-holding twist.
    joint_margin_rad: joints stop this far from their position limits.
    joint_speed_fraction: fraction of the URDF joint velocity limits used.
    """

    singular_threshold: float = 0.05
    max_damping: float = 0.05
    height_gain: float = 2.0
    orientation_gain: float = 2.0
    max_angular_speed: float = 0.5
    joint_margin_rad: float = 0.05
    joint_speed_fraction: float = 0.5

    def __post_init__(self) -> None:
        """Reject values that make no sense, naming the field."""
        for name in ('singular_threshold', 'max_damping', 'height_gain', 'orientation_gain',
                     'max_angular_speed', 'joint_margin_rad'):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f'{name} must be a non-negative number, got {value!r}')
        if not 0.0 < self.joint_speed_fraction <= 1.0:
            raise ValueError('joint_speed_fraction must be in (0, 1], got '
                             f'{self.joint_speed_fraction!r}')


class EEVelocityController:
    """Turns a tool velocity (base frame) into limited joint velocities."""

    def __init__(self, kinematics: SawyerKinematics, config: ControllerConfig) -> None:
        self.kinematics = kinematics
        self.config = config

    def twist(self, linear: np.ndarray, pose: Pose, hold: Optional[Pose],
              planar: bool) -> np.ndarray:
        """Return the 6-D twist: the command, plus holding terms for height and orientation."""
        twist = np.zeros(6)
        twist[:3] = linear
        if hold is not None:
            if planar:
                twist[2] = self.config.height_gain * (hold.position[2] - pose.position[2])
            angular = self.config.orientation_gain * rotation_error(hold.rotation,
                                                                    pose.rotation)
            norm = float(np.linalg.norm(angular))
            if norm > self.config.max_angular_speed:
                angular *= self.config.max_angular_speed / norm
            twist[3:] = angular
        return twist

    def joint_velocities(self, joint_angles: np.ndarray, twist: np.ndarray,
                         pose: Optional[Pose] = None, horizon_s: float = 0.1) -> np.ndarray:
        """Return joint velocities (rad/s) for a 6-D twist, within the joint limits."""
        jacobian = self.kinematics.jacobian(joint_angles, pose)
        qdot = dls_joint_velocities(jacobian, twist,
                                    singular_threshold=self.config.singular_threshold,
                                    max_damping=self.config.max_damping)
        return limit_joint_velocities(
            qdot, joint_angles,
            velocity_limits=JOINT_VELOCITY_LIMITS * self.config.joint_speed_fraction,
            margin_rad=self.config.joint_margin_rad, horizon_s=horizon_s)
