"""Sawyer arm kinematics in plain numpy: forward kinematics and the geometric Jacobian.

Model: the kinematic chain of metaworld's Sawyer MJCF (`objects/assets/xyz_base.xml`), which
is the sim's own geometry, typed in below as constants. Its joint frames are those of Rethink's
published URDF (`sawyer_description`, `sawyer_base.urdf.xacro`): the same offsets, with the
URDF's roll/pitch/yaw written as quaternions. Joint position limits are the URDF's (metaworld
narrows right_j1 to [-3.8, -0.5] for its tabletop tasks; the real robot allows the URDF range),
joint velocity limits the URDF's `velocity` attributes. `test_robot_kinematics.py` checks the
constants against the installed MJCF with MuJoCo's own forward kinematics, so the driver, the
fake Sawyer and the sim share one geometry. MuJoCo is not needed at run time.

Frames: everything is expressed in the robot's `base` frame (intera's `base`; metaworld puts
it at the world origin, so the sim's world frame is the base frame). `right_hand` is the frame
intera's endpoint_state reports; the tool point (default: metaworld's `hand` body, 0.12 m
further along right_hand's z) is what the driver moves and the safety box holds.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Optional, Sequence

import numpy as np

JOINT_NAMES = tuple(f'right_j{i}' for i in range(7))
_H = math.sqrt(0.5)

# (translation in the parent frame, rotation quaternion w, x, y, z) of each joint's child frame;
# every joint turns about its own frame's z axis. From metaworld's MJCF == Rethink's URDF.
_JOINT_ORIGINS = (
    ((0.0, 0.0, 0.08), (1.0, 0.0, 0.0, 0.0)),  # right_j0 (right_arm_base_link -> right_l0)
    ((0.081, 0.05, 0.237), (0.5, -0.5, 0.5, 0.5)),  # right_j1
    ((0.0, -0.14, 0.1425), (_H, _H, 0.0, 0.0)),  # right_j2
    ((0.0, -0.042, 0.26), (_H, -_H, 0.0, 0.0)),  # right_j3
    ((0.0, -0.125, -0.1265), (_H, _H, 0.0, 0.0)),  # right_j4
    ((0.0, 0.031, 0.275), (_H, -_H, 0.0, 0.0)),  # right_j5
    ((0.0, -0.11, 0.1053),  # right_j6 (URDF rpy -pi/2, -0.17453, pi)
     (0.06162481001443177, 0.0616300100152768, -0.7044161144721925, 0.7044161144721925)),
)
RIGHT_HAND_ORIGIN = ((0.0, 0.0, 0.0245), (_H, 0.0, 0.0, _H))  # right_l6 -> right_hand
# metaworld's `hand` body (the gripper's centre, the point the sim's mocap drives).
METAWORLD_HAND_OFFSET_M = 0.12

# Rethink URDF limits (rad, rad/s).
JOINT_LOWER = np.array([-3.0503, -3.8095, -3.0426, -3.0439, -2.9761, -2.9761, -4.7124])
JOINT_UPPER = np.array([3.0503, 2.2736, 3.0426, 3.0439, 2.9761, 2.9761, 4.7124])
JOINT_VELOCITY_LIMITS = np.array([1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545])


def quaternion_to_matrix(quaternion_wxyz: Sequence[float]) -> np.ndarray:
    """Return the rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = (float(v) for v in quaternion_wxyz)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Return the unit quaternion (w, x, y, z), w >= 0, of a rotation matrix."""
    r = np.asarray(rotation, dtype=float)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s,
                      (r[1, 0] - r[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + r[i, i] - r[j, j] - r[k, k], 1e-12))
        q = np.empty(4)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Return the rotation vector (axis * angle, base frame) that turns `current` to `target`."""
    delta = np.asarray(target) @ np.asarray(current).T
    angle_cos = np.clip((np.trace(delta) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(angle_cos)
    axis = np.array([delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0],
                     delta[1, 0] - delta[0, 1]])
    sin = math.sin(angle)
    if sin < 1e-6:
        if angle < 1e-6:
            return 0.5 * axis  # small angle: the skew part is the rotation vector
        # Half a turn: the axis from the symmetric part.
        column = int(np.argmax(np.diag(delta)))
        axis = (delta[:, column] + np.eye(3)[column]) / math.sqrt(
            2.0 * (1.0 + delta[column, column]))
        return axis * angle
    return axis * (angle / (2.0 * sin))


@dataclass(frozen=True)
class Pose:
    """A frame in the base frame: position (m) and rotation matrix."""

    position: np.ndarray
    rotation: np.ndarray

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        """The rotation as (x, y, z, w), ROS's order."""
        w, x, y, z = matrix_to_quaternion(self.rotation)
        return np.array([x, y, z, w])


class SawyerKinematics:
    """Forward kinematics and Jacobian of the Sawyer's right arm from joint angles.

    tool_offset_m: distance of the controlled point from `right_hand` along its z axis
        (default: metaworld's hand body; 0 for intera's right_hand endpoint).
    """

    n_joints = 7

    def __init__(self, tool_offset_m: float = METAWORLD_HAND_OFFSET_M) -> None:
        if not math.isfinite(tool_offset_m) or not 0.0 <= tool_offset_m <= 0.5:
            raise ValueError(f'tool_offset_m must be in [0, 0.5] m, got {tool_offset_m!r}')
        self.tool_offset_m = float(tool_offset_m)
        self._origins = [(np.array(p), quaternion_to_matrix(q)) for p, q in _JOINT_ORIGINS]
        self._hand = (np.array(RIGHT_HAND_ORIGIN[0]), quaternion_to_matrix(RIGHT_HAND_ORIGIN[1]))

    def _check(self, joint_angles: Sequence[float]) -> np.ndarray:
        q = np.asarray(joint_angles, dtype=float)
        if q.shape != (self.n_joints,) or not np.all(np.isfinite(q)):
            raise ValueError(f'joint angles must be {self.n_joints} finite numbers, '
                             f'got {joint_angles!r}')
        return q

    def joint_frames(self, joint_angles: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return each joint's (origin, z axis) in the base frame."""
        frames, _ = self._chain(self._check(joint_angles))
        return frames

    def _chain(self, q: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], Pose]:
        position = np.zeros(3)
        rotation = np.eye(3)
        frames = []
        for angle, (offset, fixed) in zip(q, self._origins):
            position = position + rotation @ offset
            rotation = rotation @ fixed
            frames.append((position.copy(), rotation[:, 2].copy()))
            c, s = math.cos(angle), math.sin(angle)
            rotation = rotation @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        position = position + rotation @ self._hand[0]
        rotation = rotation @ self._hand[1]
        return frames, Pose(position, rotation)

    def right_hand_pose(self, joint_angles: Sequence[float]) -> Pose:
        """Return intera's `right_hand` frame (what endpoint_state reports)."""
        return self._chain(self._check(joint_angles))[1]

    def forward(self, joint_angles: Sequence[float]) -> Pose:
        """Return the tool point's pose (right_hand moved `tool_offset_m` along its z)."""
        hand = self.right_hand_pose(joint_angles)
        return Pose(hand.position + self.tool_offset_m * hand.rotation[:, 2], hand.rotation)

    def jacobian(self, joint_angles: Sequence[float],
                 pose: Optional[Pose] = None) -> np.ndarray:
        """Return the 6x7 geometric Jacobian of the tool point: rows vx, vy, vz, wx, wy, wz."""
        q = self._check(joint_angles)
        frames, hand = self._chain(q)
        tool = pose.position if pose is not None else (
            hand.position + self.tool_offset_m * hand.rotation[:, 2])
        jacobian = np.empty((6, self.n_joints))
        for index, (origin, axis) in enumerate(frames):
            jacobian[:3, index] = np.cross(axis, tool - origin)
            jacobian[3:, index] = axis
        return jacobian
