"""The edge between intera's bridged topics and `rig_ros.robot.backends` payloads.

With `intera_core_msgs` importable (a ROS 2 build of intera's message package, as ros1_bridge
needs anyway to bridge them) the real types are used on intera's topic names:
- `/robot/limb/right/joint_command`: intera_core_msgs/JointCommand (mode, names, position,
  velocity);
- `/robot/limb/right/endpoint_state`: intera_core_msgs/EndpointState (pose).
Without it (these machines: no intera_core_msgs for ROS 2) a documented stand-in is used, on
the same names with the suffix `_standin` so that a stand-in never meets a real type:
- joint command: sensor_msgs/JointState: `name`, and `velocity` filled for velocity mode or
  `position` filled for position mode (never both); header.frame_id names the mode
  ('velocity_mode' / 'position_mode');
- endpoint state: std_msgs/Float64MultiArray [x, y, z, qx, qy, qz, qw] (base frame).
`/robot/joint_states` is sensor_msgs/JointState in both cases (intera's own type).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from rig_ros.interfaces.names import STANDIN_SUFFIX
from rig_ros.robot.backends import (
    JointCommandPayload, parse_joint_command, POSITION_MODE, VELOCITY_MODE)
from rig_ros.robot.kinematics import JOINT_NAMES

_MODE_NAMES = {VELOCITY_MODE: 'velocity_mode', POSITION_MODE: 'position_mode'}


def arm_joint_positions(msg: JointState) -> list[float]:
    """Return right_j0..right_j6 of a joint state (any order, other joints too).

    ValueError says what is wrong: names and positions of different lengths, an arm joint
    missing or named twice, a non-finite angle.
    """
    names = list(msg.name)
    if len(names) != len(msg.position):
        raise ValueError(f'{len(names)} joint names but {len(msg.position)} positions')
    missing = [name for name in JOINT_NAMES if names.count(name) != 1]
    if missing:
        raise ValueError(f'joints {missing} missing or repeated in {names}')
    angles = [float(msg.position[names.index(name)]) for name in JOINT_NAMES]
    if not all(math.isfinite(angle) for angle in angles):
        raise ValueError(f'non-finite joint angles {angles}')
    return angles


def intera_messages_available() -> bool:
    """Return True when intera_core_msgs (JointCommand, EndpointState) can be imported."""
    try:
        from intera_core_msgs.msg import EndpointState, JointCommand  # noqa: F401
    except ImportError:
        return False
    return True


class InteraTopics:
    """Message types and topic names for one choice: real intera types or the stand-in.

    message_types: 'auto' (intera's when importable), 'intera' or 'standin'.
    """

    def __init__(self, message_types: Literal['auto', 'intera', 'standin'],
                 command_topic: str, endpoint_topic: str) -> None:
        available = intera_messages_available()
        if message_types == 'intera' and not available:
            raise ValueError('message_types is intera but intera_core_msgs cannot be imported')
        self.intera = message_types == 'intera' or (message_types == 'auto' and available)
        if self.intera:
            from intera_core_msgs.msg import EndpointState, JointCommand
            self.command_type: Any = JointCommand
            self.endpoint_type: Any = EndpointState
            self.command_topic, self.endpoint_topic = command_topic, endpoint_topic
        else:
            self.command_type = JointState
            self.endpoint_type = Float64MultiArray
            self.command_topic = command_topic + STANDIN_SUFFIX
            self.endpoint_topic = endpoint_topic + STANDIN_SUFFIX

    @property
    def description(self) -> str:
        """Which types are in use, for the startup log."""
        return 'intera_core_msgs' if self.intera else 'stand-in (sensor_msgs/std_msgs)'

    def command_message(self, payload: JointCommandPayload) -> Any:
        """Build the command message of a payload."""
        if self.intera:
            msg = self.command_type()
            msg.mode = payload.mode
            msg.names = list(payload.names)
            msg.position = list(payload.position)
            msg.velocity = list(payload.velocity)
            return msg
        msg = JointState()
        msg.header.frame_id = _MODE_NAMES[payload.mode]
        msg.name = list(payload.names)
        msg.position = list(payload.position)
        msg.velocity = list(payload.velocity)
        return msg

    def command_payload(self, msg: Any) -> JointCommandPayload:
        """Parse a command message; raise ValueError for one intera would refuse."""
        if self.intera:
            return parse_joint_command(int(msg.mode), msg.names, msg.position, msg.velocity)
        if len(msg.velocity) and len(msg.position):
            raise ValueError('stand-in joint command with both position and velocity')
        mode = VELOCITY_MODE if len(msg.velocity) else POSITION_MODE
        return parse_joint_command(mode, msg.name, msg.position, msg.velocity)

    def endpoint_message(self, position: Sequence[float], orientation_xyzw: Sequence[float],
                         stamp: Any) -> Any:
        """Build an endpoint-state message."""
        if self.intera:
            msg = self.endpoint_type()
            msg.header.stamp = stamp
            msg.header.frame_id = 'base'
            p, o = msg.pose.position, msg.pose.orientation
            p.x, p.y, p.z = (float(v) for v in position)
            o.x, o.y, o.z, o.w = (float(v) for v in orientation_xyzw)
            return msg
        return Float64MultiArray(data=[float(v) for v in (*position, *orientation_xyzw)])

    def endpoint_pose(self, msg: Any) -> tuple[list[float], list[float]]:
        """Return (position, orientation xyzw) of an endpoint-state message."""
        if self.intera:
            p, o = msg.pose.position, msg.pose.orientation
            return [p.x, p.y, p.z], [o.x, o.y, o.z, o.w]
        data = list(msg.data)
        if len(data) != 7:
            raise ValueError(f'stand-in endpoint state needs 7 numbers, got {len(data)}')
        return data[:3], data[3:]
