"""scene_camera: the fake Sawyer's head camera, the sim's scene rendered at the arm's joints.

Subscribes `/robot/joint_states` (sensor_msgs/JointState as intera publishes them: head_pan and
right_j0..right_j6, any order; reliable, keep last 1) and publishes at `rate_hz` on intera's
head camera topic `/io/internal_camera/head_camera/image_rect_color` (sensor_msgs/Image rgb8,
image_height x image_width, sensor QoS) the task's MuJoCo scene with the arm at the latest
angles (`rig_ros.sim.joint_camera.JointCamera`: the sim's assets and camera, no physics),
stamped when the angles are taken, just before rendering, frame `frame_id`. Next to
`fake_sawyer` (its synthetic camera off) the `sim:=false` graph sees frames that move with the
arm; with the default `view` (config/sawyer_<task>.yaml's camera_pipeline crop) the pipeline's
84x84 images are the sim's frames.

Nothing goes out before the first joint state. A joint state without the seven arm angles, or
with non-finite ones, is logged (each distinct problem, throttled) and skipped: the last good
angles stay. An arm standing still costs no rendering (its frame goes out again, newly
stamped). On shutdown one line sums up frames, renders, their mean cost and skipped states.

Parameters (read-only): `SceneCameraConfig` (rate_hz, frame_id) and
`rig_ros.sim.joint_camera.JointCameraConfig` (task, image_height, image_width, base_yaw_deg,
view).
"""

from dataclasses import dataclass
import math
import time
from typing import Any, Optional, Sequence

from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header

from rig_ros.edge.entry import run_node
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.edge.intera_msgs import arm_joint_positions
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config
from rig_ros.interfaces.names import HEAD_CAMERA_TOPIC, JOINT_STATES_TOPIC, SCENE_CAMERA
from rig_ros.interfaces.qos import ARM_QOS, SENSOR_QOS
from rig_ros.sim.joint_camera import JointCamera, JointCameraConfig

THROTTLE_S = 5.0


@dataclass(frozen=True)
class SceneCameraConfig:
    """Settings of the scene camera node."""

    rate_hz: float = 10.0
    """Frames per second (a render each, unless the arm stood still)."""
    frame_id: str = 'head_camera'
    """header.frame_id of the frames."""

    def __post_init__(self) -> None:
        """Reject bad values, naming the field."""
        if not math.isfinite(self.rate_hz) or not 0 < self.rate_hz <= 100:
            raise ValueError(f'rate_hz must be in (0, 100], got {self.rate_hz!r}')


class SceneCamera(Node):
    """Renders the sim's scene at the measured joint angles and publishes it as a camera."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SCENE_CAMERA, **kwargs)
        self.config = declare_config(self, SceneCameraConfig, read_only=True)
        camera_config = declare_config(self, JointCameraConfig, read_only=True)
        self._camera = JointCamera(camera_config)
        self._joints: Optional[list[float]] = None
        self._throttle = KeyedThrottle(THROTTLE_S)
        self._counts = {'frames': 0, 'skipped': 0}
        self._render_s = 0.0
        self._publisher = self.create_publisher(Image, HEAD_CAMERA_TOPIC, SENSOR_QOS)
        self._subscription = self.create_subscription(
            JointState, JOINT_STATES_TOPIC, self.joint_states_callback, ARM_QOS)
        self.create_timer(1.0 / self.config.rate_hz, self.frame_callback)
        self.get_logger().info(
            f'{self._subscription.topic_name} -> {self._publisher.topic_name}: '
            f'{camera_config.task} scene, {camera_config.image_width}x'
            f'{camera_config.image_height} rgb8 at {self.config.rate_hz:g} Hz, view '
            f'{camera_config.view}, base turned {camera_config.base_yaw_deg:g} deg')

    def joint_states_callback(self, msg: JointState) -> None:
        """Keep the arm's angles of a joint state; log and skip a bad one."""
        try:
            self._joints = arm_joint_positions(msg)
        except ValueError as error:
            self._counts['skipped'] += 1
            if self._throttle.due(str(error)):
                self.get_logger().error(
                    f'skipped joint state: {error} [{self._counts["skipped"]} skipped so far]'
                    f'{suffix(self._throttle)}')

    def frame_callback(self) -> None:
        """Render the latest angles and publish the frame."""
        if self._joints is None:
            return
        stamp = self.get_clock().now().to_msg()
        started = time.monotonic()
        renders = self._camera.renders
        frame = self._camera.render(self._joints)
        if self._camera.renders > renders:
            self._render_s += time.monotonic() - started
        self._publisher.publish(array_to_image(frame, 'rgb8', Header(
            stamp=stamp, frame_id=self.config.frame_id)))
        self._counts['frames'] += 1
        if self._counts['frames'] == 1:
            self.get_logger().info(f'first frame, rendered in '
                                   f'{1e3 * (time.monotonic() - started):.0f} ms')

    def on_shutdown(self) -> None:
        """Sum up what the camera did."""
        counts, renders = self._counts, self._camera.renders
        mean_ms = 1e3 * self._render_s / renders if renders else 0.0
        self.get_logger().info(
            f'{counts["frames"]} frames published, {renders} rendered ({mean_ms:.1f} ms '
            f'each), {counts["skipped"]} joint states skipped')

    def destroy_node(self) -> None:
        """Release the renderer's GL context, then the node."""
        self._camera.close()
        super().destroy_node()


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the scene_camera node until SIGINT/SIGTERM."""
    return run_node(SceneCamera, args)


if __name__ == '__main__':
    raise SystemExit(main())
