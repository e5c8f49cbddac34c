"""fake_sawyer: a stand-in for a Sawyer reached through ros1_bridge, for tests (no robot here).

Behaves like intera (`rig_ros.robot.fake_arm.FakeSawyerArm`), not like a driver hopes:
publishes `/robot/joint_states` (sensor_msgs/JointState: head_pan then right_j0..right_j6) at
`state_rate_hz`, takes velocity- and position-mode joint commands on
`/robot/limb/right/joint_command` that hold for `command_timeout_s` only (then the arm holds
position), clips to joint velocity and position limits, and publishes the right_hand pose on
`/robot/limb/right/endpoint_state` (types as in `rig_ros.edge.intera_msgs`: intera's when
importable, else the `_standin` topics).
Camera: the fake's head camera is the `scene_camera` node (the sim's scene rendered at these
joint states). With `camera_rate_hz` > 0 (default 0: none) this node publishes a cheap
synthetic bgr8 image on the head camera topic instead (grey table, a dark disc where the tool
point is, seen from above), for tests that only need frames to flow; never run both.
"""

from dataclasses import dataclass
import math
import time
from typing import Any, Literal, Optional, Sequence

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from rig_ros.edge.entry import run_node
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.edge.intera_msgs import InteraTopics
from rig_ros.edge.params import declare_config
from rig_ros.interfaces.names import (
    ENDPOINT_STATE_TOPIC, FAKE_SAWYER, HEAD_CAMERA_TOPIC, JOINT_COMMAND_TOPIC, JOINT_STATES_TOPIC)
from rig_ros.interfaces.qos import ARM_QOS, SENSOR_QOS
from rig_ros.robot.fake_arm import FakeSawyerArm, NEUTRAL_JOINT_POSITIONS
from rig_ros.robot.kinematics import METAWORLD_HAND_OFFSET_M

THROTTLE_S = 5.0


@dataclass(frozen=True)
class FakeSawyerConfig:
    """Settings of the fake Sawyer.

    state_rate_hz: joint and endpoint states per second (intera: 100).
    command_timeout_s: a joint command holds this long, then the arm holds position.
    velocity_lag_s: time constant with which joints follow commanded velocities.
    initial_joint_positions: joint angles at startup (rad; default: intera's neutral pose).
    message_types: 'auto', 'intera' or 'standin' (see rig_ros.edge.intera_msgs).
    camera_rate_hz: synthetic head-camera frames per second (0: none; scene_camera renders).
    image_height: synthetic frame rows.
    image_width: synthetic frame columns.
    """

    state_rate_hz: float = 100.0
    command_timeout_s: float = 0.2
    velocity_lag_s: float = 0.02
    initial_joint_positions: tuple[float, ...] = NEUTRAL_JOINT_POSITIONS
    message_types: Literal['auto', 'intera', 'standin'] = 'auto'
    camera_rate_hz: float = 0.0
    image_height: int = 120
    image_width: int = 160

    def __post_init__(self) -> None:
        """Reject bad values, naming the field."""
        for name in ('state_rate_hz', 'command_timeout_s'):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        if len(self.initial_joint_positions) != 7:
            raise ValueError('initial_joint_positions must hold 7 angles')


def synthetic_frame(tool_xy: Sequence[float], height: int, width: int) -> np.ndarray:
    """Return a bgr8 top view of base x 0.35..0.9 m (rows), y -0.3..0.3 m (columns)."""
    image = np.full((height, width, 3), 170, dtype=np.uint8)
    row = (0.9 - tool_xy[0]) / 0.55 * height
    column = (0.3 - tool_xy[1]) / 0.6 * width
    rows, columns = np.ogrid[:height, :width]
    disc = (rows - row) ** 2 + (columns - column) ** 2 <= (0.04 * width) ** 2
    image[disc] = (40, 40, 200)
    return image


class FakeSawyer(Node):
    """Publishes a simulated arm's states and obeys intera-style joint commands."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(FAKE_SAWYER, **kwargs)
        self.config = declare_config(self, FakeSawyerConfig, read_only=True)
        self.arm = FakeSawyerArm(self.config.initial_joint_positions,
                                 command_timeout_s=self.config.command_timeout_s,
                                 velocity_lag_s=self.config.velocity_lag_s,
                                 now=time.monotonic())
        self._topics = InteraTopics(self.config.message_types, JOINT_COMMAND_TOPIC,
                                    ENDPOINT_STATE_TOPIC)
        self._states = self.create_publisher(JointState, JOINT_STATES_TOPIC, ARM_QOS)
        self._endpoint = self.create_publisher(self._topics.endpoint_type,
                                               self._topics.endpoint_topic, ARM_QOS)
        self.create_subscription(self._topics.command_type, self._topics.command_topic,
                                 self.command_callback, ARM_QOS)
        self.create_timer(1.0 / self.config.state_rate_hz, self.state_callback)
        if self.config.camera_rate_hz > 0:
            self._camera = self.create_publisher(Image, HEAD_CAMERA_TOPIC, SENSOR_QOS)
            self.create_timer(1.0 / self.config.camera_rate_hz, self.camera_callback)
        self.get_logger().info(
            f'fake Sawyer: {JOINT_STATES_TOPIC} at {self.config.state_rate_hz:g} Hz, commands '
            f'on {self._topics.command_topic} ({self._topics.description}), timeout '
            f'{self.config.command_timeout_s} s')

    def command_callback(self, msg: Any) -> None:
        """Take a joint command as intera would (refused ones are logged)."""
        now = time.monotonic()
        self.arm.step(now)
        try:
            payload = self._topics.command_payload(msg)
        except ValueError as error:
            self.arm.refused += 1
            self.get_logger().error(f'refused joint command: {error}',
                                    throttle_duration_sec=THROTTLE_S)
            return
        if not self.arm.command(payload, now):
            self.get_logger().error(f'refused joint command for joints {payload.names}',
                                    throttle_duration_sec=THROTTLE_S)

    def state_callback(self) -> None:
        """Advance the arm and publish joint and endpoint states."""
        self.arm.step(time.monotonic())
        stamp = self.get_clock().now().to_msg()
        names, positions, velocities = self.arm.joint_state()
        msg = JointState(name=list(names), position=positions, velocity=velocities)
        msg.header.stamp = stamp
        self._states.publish(msg)
        pose = self.arm.endpoint()
        self._endpoint.publish(self._topics.endpoint_message(pose.position,
                                                             pose.quaternion_xyzw, stamp))

    def camera_callback(self) -> None:
        """Publish a synthetic head-camera frame."""
        pose = self.arm.endpoint()
        tool = pose.position + METAWORLD_HAND_OFFSET_M * pose.rotation[:, 2]
        frame = synthetic_frame(tool[:2], self.config.image_height, self.config.image_width)
        msg = array_to_image(frame, 'bgr8')
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = 'head_camera'
        self._camera.publish(msg)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the fake_sawyer node until SIGINT/SIGTERM."""
    return run_node(FakeSawyer, args)


if __name__ == '__main__':
    raise SystemExit(main())
