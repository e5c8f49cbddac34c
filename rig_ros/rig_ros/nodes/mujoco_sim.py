"""mujoco_sim: the simulated Sawyer, with the topics and services a real robot driver offers.

Publishes, one set per frame (same stamp): `camera/image_raw` (sensor_msgs/Image rgb8,
image_height x image_width, sensor QoS), `robot/state` (geometry_msgs/PointStamped: the hand,
frame 'world') and `sim/ground_truth` (std_msgs/Float64MultiArray: `SawyerSim.state_vector`,
hand x, y then each puck's x, y, for evaluation; reliable, keep last 1).
Subscribes `ee_velocity` (geometry_msgs/TwistStamped: linear x, y in m/s; the sim clips them
to max_speed_m_s and the hand to the workspace box; a non-finite command is rejected with a
log). Serves `robot/reset` (std_srvs/Trigger: a seeded, settled reset, then a fresh frame; with
`reset_to_goal_probability` the reset sets a sampled goal state instead of the start, and the
response's message says which: 'reset with seed S to the start' or '... to a sampled goal
state [x, y, ...]').
Goal rendering for tests and evaluation: a state vector on `sim/goal_state`
(std_msgs/Float64MultiArray) is answered on `sim/goal_image` (latched) with the scene
rendered in that state, the current state untouched.

Stepping (`rig_ros.sim.driver`): lockstep (one control period per command, a frame at once;
the current frame again after `idle_frame_period_s` without commands, so the loop cannot
deadlock on a lost message, and `reset_frame_delay_s` after a reset, so that a frame newer
than the episode's goal comes soon) or real time (one period per wall-clock tick with the latest
command, zero after `command_timeout_s`).

Parameters (read-only): `rig_ros.sim.sawyer.SawyerSimConfig` (task, seed, image_height,
image_width, max_speed_m_s, ...) and `rig_ros.sim.driver.SimDriverConfig` (lockstep,
idle_frame_period_s, reset_frame_delay_s, command_timeout_s, reset_to_goal_probability).
"""

import time
from typing import Any, Optional, Sequence

from geometry_msgs.msg import PointStamped, TwistStamped
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, Header, MultiArrayDimension
from std_srvs.srv import Trigger

from rig_ros.edge.entry import executor_factory, FRAME_PATH_EXECUTOR, run_node
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.edge.log_limits import KeyedThrottle, suffix
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.interfaces.names import (
    CAMERA_IMAGE_TOPIC, EE_VELOCITY_TOPIC, GROUND_TRUTH_TOPIC, MUJOCO_SIM, RESET_SERVICE,
    ROBOT_STATE_TOPIC, SIM_GOAL_IMAGE_TOPIC, SIM_GOAL_STATE_TOPIC)
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATE_QOS
from rig_ros.sim.driver import SimDriver, SimDriverConfig
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

CAMERA_FRAME = 'sim_camera'
WORLD_FRAME = 'world'
THROTTLE_S = 5.0


class MujocoSim(Node):
    """Steps a SawyerSim on velocity commands and publishes its camera and state."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(MUJOCO_SIM, **kwargs)
        sim_config = declare_config(self, SawyerSimConfig, read_only=True)
        driver_config = declare_config(self, SimDriverConfig, read_only=True)
        try:
            self._sim = SawyerSim(sim_config)
        except ValueError as error:
            self.get_logger().error(f'bad parameters for {self.get_fully_qualified_name()}: '
                                    f'{error}')
            raise ParameterError(str(error)) from None
        self._driver = SimDriver(self._sim, driver_config)
        self._rejected = 0
        self._throttle = KeyedThrottle(THROTTLE_S)

        self._image_publisher = self.create_publisher(Image, CAMERA_IMAGE_TOPIC, SENSOR_QOS)
        self._state_publisher = self.create_publisher(PointStamped, ROBOT_STATE_TOPIC,
                                                      STATE_QOS)
        self._truth_publisher = self.create_publisher(Float64MultiArray, GROUND_TRUTH_TOPIC,
                                                      STATE_QOS)
        self._goal_image_publisher = self.create_publisher(Image, SIM_GOAL_IMAGE_TOPIC,
                                                           LATCHED_QOS)
        self._command_subscription = self.create_subscription(
            TwistStamped, EE_VELOCITY_TOPIC, self.command_callback, COMMAND_QOS)
        self._goal_state_subscription = self.create_subscription(
            Float64MultiArray, SIM_GOAL_STATE_TOPIC, self.goal_state_callback, STATE_QOS)
        self._reset_service = self.create_service(Trigger, RESET_SERVICE, self.reset_callback)
        self._timer = self.create_timer(self._driver.tick_period_s, self.tick_callback)
        mode = ('lockstep' if driver_config.lockstep
                else f'real time, {sim_config.control_period_s} s per step')
        self.get_logger().info(
            f'{sim_config.task} sim ({mode}): {self._command_subscription.topic_name} -> '
            f'{self._image_publisher.topic_name} {sim_config.image_width}x'
            f'{sim_config.image_height}, reset service {self.resolve_service_name(RESET_SERVICE)}')
        self.publish_frame()

    @property
    def sim(self) -> SawyerSim:
        """The simulation."""
        return self._sim

    def command_callback(self, msg: TwistStamped) -> None:
        """Take a velocity command; in lockstep, step and publish a frame at once."""
        velocity = np.array([msg.twist.linear.x, msg.twist.linear.y])
        try:
            frame_due = self._driver.command(velocity, time.monotonic())
        except ValueError as error:
            self._rejected += 1
            if self._throttle.due(str(error)):
                self.get_logger().error(f'rejected velocity command: {error} '
                                        f'[{self._rejected} rejected so far]'
                                        f'{suffix(self._throttle)}')
            return
        if frame_due:
            self.publish_frame()

    def tick_callback(self) -> None:
        """Real time: step with the latest command; lockstep: republish when idle."""
        if self._driver.tick(time.monotonic()):
            self.publish_frame()

    def reset_callback(self, request: Trigger.Request,
                       response: Trigger.Response) -> Trigger.Response:
        """Reset the scene (seeded, settled; start or goal), publish a fresh frame, answer."""
        outcome = self._driver.reset()
        self.publish_frame(reset=True)
        response.success, response.message = True, outcome.describe()
        return response

    def goal_state_callback(self, msg: Float64MultiArray) -> None:
        """Publish the scene rendered in a given state on sim/goal_image."""
        try:
            image = self._sim.render_goal(np.asarray(msg.data, dtype=float))
        except ValueError as error:
            if self._throttle.due(str(error)):
                self.get_logger().error(f'cannot render goal state {list(msg.data)}: {error}'
                                        f'{suffix(self._throttle)}')
            return
        self._goal_image_publisher.publish(array_to_image(image, 'rgb8', self._header(
            CAMERA_FRAME)))

    def _header(self, frame_id: str) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=frame_id)

    def publish_frame(self, reset: bool = False) -> None:
        """Publish the current camera frame, hand position and ground truth."""
        header = self._header(CAMERA_FRAME)
        self._image_publisher.publish(array_to_image(self._sim.render(), 'rgb8', header))
        hand = self._sim.ground_truth()['hand_xyz']
        state = PointStamped(header=Header(stamp=header.stamp, frame_id=WORLD_FRAME))
        state.point.x, state.point.y, state.point.z = (float(v) for v in hand)
        self._state_publisher.publish(state)
        truth = Float64MultiArray(data=self._sim.state_vector().tolist())
        truth.layout.dim = [MultiArrayDimension(label='state', size=self._sim.state_dim,
                                                stride=self._sim.state_dim)]
        self._truth_publisher.publish(truth)
        self._driver.frame_published(time.monotonic(), reset)

    def destroy_node(self) -> None:
        """Release the renderers' GL contexts, then the node."""
        sim = getattr(self, '_sim', None)  # absent when a bad parameter stopped __init__
        if sim is not None:
            sim.close()
        super().destroy_node()


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the mujoco_sim node until SIGINT/SIGTERM."""
    return run_node(MujocoSim, args, make_executor=executor_factory(FRAME_PATH_EXECUTOR))


if __name__ == '__main__':
    raise SystemExit(main())
