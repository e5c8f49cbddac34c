"""sawyer_driver: the real Sawyer behind the same topics and services as mujoco_sim.

Contract (relative names, in the robot's namespace):
- subscribes `ee_velocity` (geometry_msgs/TwistStamped, m/s in the robot's base frame;
  frame_id '' or 'base'; linear.z ignored when `planar`);
- publishes `robot/state` (geometry_msgs/PointStamped: the tool point, frame 'base') every
  cycle and `camera/image_raw` (a relay of `camera_source_topic`, intera's head camera);
- serves `robot/reset` (std_srvs/Trigger: move to `safety.reset_joint_positions`, answered
  once there or failed), `driver/activate` (std_srvs/SetBool: nothing moves before it;
  true also re-arms after a stop), `driver/stop` (std_srvs/Trigger: latched stop).
Every `1 / command_rate_hz` (>= 100 Hz, faster than intera's command timeout) the driver
sends joint velocities: the command through the safety filter (workspace box, speed cap,
watchdog `safety.watchdog_s`) and damped least squares (`rig_ros.robot.driver`). That cycle
runs on its own thread on the monotonic clock (`rig_ros.robot.periodic`), not on an executor
timer, so that no callback and no executor stall can delay it; ROS callbacks only hand inputs
to it under one lock, on a single-threaded executor. `robot/reset` is answered asynchronously
(the executor keeps taking joint states while the arm moves).

Backends (`backend`): 'bridge' talks to intera's topics through ros1_bridge
(`bridge.*` parameters; real intera_core_msgs types when importable, else the stand-in
documented in `rig_ros.edge.intera_msgs`); 'intera' wraps intera_interface.Limb in this
process (ROS 1 rospy in the same Python; UNTESTED on a robot).
Parameters (read-only): `DriverConfig` (top level), `SafetyConfig` (`safety.*`),
`ControllerConfig` (`controller.*`), `BridgeConfig` (`bridge.*`).
"""

import threading
import time
from typing import Any, Optional, Sequence

from geometry_msgs.msg import PointStamped, TwistStamped
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.task import Future
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from rig_ros.edge.entry import run_node
from rig_ros.edge.intera_msgs import InteraTopics
from rig_ros.edge.params import declare_config, ParameterError
from rig_ros.interfaces.names import (
    CAMERA_IMAGE_TOPIC, DRIVER_ACTIVATE_SERVICE, DRIVER_STOP_SERVICE, EE_VELOCITY_TOPIC,
    RESET_SERVICE, ROBOT_STATE_TOPIC, SAWYER_DRIVER)
from rig_ros.interfaces.qos import ARM_QOS, COMMAND_QOS, SENSOR_QOS
from rig_ros.robot.backends import (
    ArmBackend, BridgeConfig, BridgeTopicsBackend, InteraLimbBackend, JointCommandPayload)
from rig_ros.robot.control import ControllerConfig
from rig_ros.robot.driver import DriverConfig, Mode, SawyerDriver
from rig_ros.robot.periodic import PeriodicLoop
from rig_ros.robot.safety import SafetyConfig

BASE_FRAME = 'base'
THROTTLE_S = 5.0
SHUTDOWN_ACK_S = 0.5  # wait for the final zeros to be acknowledged (bridge backend)


class SawyerDriverNode(Node):
    """Drives the Sawyer's arm from end-effector velocity commands, safely."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SAWYER_DRIVER, **kwargs)
        self.config = declare_config(self, DriverConfig, read_only=True)
        safety = declare_config(self, SafetyConfig, prefix='safety', read_only=True)
        controller = declare_config(self, ControllerConfig, prefix='controller',
                                    read_only=True)
        bridge = declare_config(self, BridgeConfig, prefix='bridge', read_only=True)
        try:
            self.driver = SawyerDriver(self.config, safety, controller)
        except ValueError as error:
            self.get_logger().error(f'bad parameters: {error}')
            raise ParameterError(str(error)) from None
        self._lock = threading.Lock()
        # Reset answers wait in their own group so inputs keep flowing meanwhile.
        self._reset_group = MutuallyExclusiveCallbackGroup()
        self._reset_waiters: list[Future] = []
        self._rejected = 0
        self._reason = ''
        self._closed = False  # on_shutdown ran: no more commands
        self._command_publisher: Optional[Publisher] = None
        self.backend = self._make_backend(bridge)

        self._state_publisher = self.create_publisher(PointStamped, ROBOT_STATE_TOPIC, ARM_QOS)
        self.create_subscription(TwistStamped, EE_VELOCITY_TOPIC, self.command_callback,
                                 COMMAND_QOS)
        if self.config.camera_source_topic:
            self._image_publisher = self.create_publisher(Image, CAMERA_IMAGE_TOPIC,
                                                          SENSOR_QOS)
            self.create_subscription(Image, self.config.camera_source_topic,
                                     self._image_publisher.publish, SENSOR_QOS)
        self.create_service(Trigger, RESET_SERVICE, self.reset_callback,
                            callback_group=self._reset_group)
        self.create_service(SetBool, DRIVER_ACTIVATE_SERVICE, self.activate_callback)
        self.create_service(Trigger, DRIVER_STOP_SERVICE, self.stop_callback)
        self.loop = PeriodicLoop(self.driver.period_s, self.tick_callback, name=SAWYER_DRIVER,
                                 on_error=self._tick_failed)
        self.get_logger().info(
            f'backend {self.config.backend}, {self.config.command_rate_hz:g} Hz, box '
            f'{safety.box_low}..{safety.box_high} m, max {safety.max_speed_m_s} m/s, watchdog '
            f'{safety.watchdog_s} s; inactive until '
            f'{self.resolve_service_name(DRIVER_ACTIVATE_SERVICE)}')
        self.loop.start()

    def _make_backend(self, bridge: BridgeConfig) -> ArmBackend:
        if self.config.backend == 'intera':
            try:
                _init_rospy()
                return InteraLimbBackend(
                    command_timeout_s=self.config.intera_command_timeout_s)
            except RuntimeError as error:
                self.get_logger().error(str(error))
                raise ParameterError(str(error)) from None
        try:
            self._topics = InteraTopics(bridge.message_types, bridge.joint_command_topic,
                                        bridge.endpoint_state_topic)
        except ValueError as error:
            self.get_logger().error(f'bad parameters: {error}')
            raise ParameterError(str(error)) from None
        self._command_publisher = self.create_publisher(
            self._topics.command_type, self._topics.command_topic, ARM_QOS)
        backend = BridgeTopicsBackend(self._publish_payload)
        self.create_subscription(JointState, bridge.joint_states_topic,
                                 self.joint_states_callback, ARM_QOS)
        self.create_subscription(self._topics.endpoint_type, self._topics.endpoint_topic,
                                 self.endpoint_callback, ARM_QOS)
        self.get_logger().info(
            f'bridge: {bridge.joint_states_topic} -> {self._topics.command_topic} '
            f'({self._topics.description})')
        return backend

    def _publish_payload(self, payload: JointCommandPayload) -> None:
        msg = self._topics.command_message(payload)
        if hasattr(msg, 'header'):
            msg.header.stamp = self.get_clock().now().to_msg()
        assert self._command_publisher is not None
        self._command_publisher.publish(msg)

    # -- inputs
    def joint_states_callback(self, msg: JointState) -> None:
        """Feed intera's joint states to the bridge backend."""
        backend = self.backend
        assert isinstance(backend, BridgeTopicsBackend)
        if backend.on_joint_states(msg.name, msg.position, msg.velocity):
            with self._lock:
                self.driver.state_received(time.monotonic())

    def endpoint_callback(self, msg: Any) -> None:
        """Keep intera's own endpoint pose (logged against forward kinematics)."""
        try:
            position, orientation = self._topics.endpoint_pose(msg)
        except ValueError as error:
            self.get_logger().error(f'bad endpoint state: {error}',
                                    throttle_duration_sec=THROTTLE_S)
            return
        backend = self.backend
        assert isinstance(backend, BridgeTopicsBackend)
        backend.on_endpoint_state(position, orientation)

    def command_callback(self, msg: TwistStamped) -> None:
        """Take an end-effector velocity command."""
        if msg.header.frame_id not in ('', BASE_FRAME):
            self._reject(f'frame {msg.header.frame_id!r} is not {BASE_FRAME!r}')
            return
        linear = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
        with self._lock:
            accepted = self.driver.command(linear, time.monotonic())
        if not accepted:
            self._reject(f'non-finite velocity {linear.tolist()}')

    def _reject(self, why: str) -> None:
        self._rejected += 1
        self.get_logger().error(f'rejected ee_velocity command: {why} '
                                f'[{self._rejected} rejected so far]',
                                throttle_duration_sec=THROTTLE_S)

    # -- the cycle (on the loop's thread)
    def tick_callback(self) -> None:
        """Send this cycle's joint velocities and the tool position."""
        now = time.monotonic()
        q = self.backend.joint_array()
        with self._lock:
            if self._closed:
                return
            if self.config.backend == 'intera' and q is not None:
                self.driver.state_received(now)  # Limb keeps the latest state itself
            result = self.driver.tick(q, now)
            # Sent under the lock: on_shutdown's zeros are always the last command.
            if result.joint_velocities is not None:
                self.backend.set_joint_velocities(
                    dict(zip(self.backend.joint_names, result.joint_velocities.tolist())))
            self._answer_resets()
        if result.tool is not None:
            state = PointStamped(header=Header(stamp=self.get_clock().now().to_msg(),
                                               frame_id=BASE_FRAME))
            state.point.x, state.point.y, state.point.z = (
                float(v) for v in result.tool.position)
            self._state_publisher.publish(state)
        if result.reason != self._reason:
            self._reason = result.reason
            if result.reason not in ('ok', 'clipped', 'resetting'):
                self.get_logger().info(f'arm: {result.reason}')

    def _tick_failed(self, error: BaseException) -> None:
        self.get_logger().error(f'control cycle failed ({self.loop.errors} so far): {error!r}',
                                throttle_duration_sec=THROTTLE_S)

    def _answer_resets(self) -> None:
        """Complete waiting reset requests once the reset ended (call with the lock held)."""
        if self._reset_waiters and self.driver.mode is not Mode.RESETTING:
            for waiter in self._reset_waiters:
                waiter.set_result(self.driver.last_reset_ok is True)
            self._reset_waiters.clear()

    # -- services
    def activate_callback(self, request: SetBool.Request,
                          response: SetBool.Response) -> SetBool.Response:
        """Allow motion (re-arming a stop) or forbid it."""
        with self._lock:
            response.message = self.driver.set_active(bool(request.data), time.monotonic())
        response.success = True
        self.get_logger().info(f'driver {response.message}')
        return response

    def stop_callback(self, request: Trigger.Request,
                      response: Trigger.Response) -> Trigger.Response:
        """Latch a stop at once."""
        with self._lock:
            response.message = self.driver.stop(time.monotonic())
            if self.backend.joint_angles() is not None:
                self.backend.stop()
        response.success = True
        self.get_logger().warning(f'driver {response.message}')
        return response

    async def reset_callback(self, request: Trigger.Request,
                             response: Trigger.Response) -> Trigger.Response:
        """Move to the reset joint positions; answer once there (or failed)."""
        with self._lock:
            started, message = self.driver.request_reset(time.monotonic())
            if started:
                # Bound to the executor: completing it from the loop's thread wakes the spin.
                waiter: Future = Future(executor=self.executor)
                waiter.add_done_callback(lambda _: None)
                self._reset_waiters.append(waiter)
        if not started:
            response.success, response.message = False, f'reset refused: {message}'
            self.get_logger().warning(response.message)
            return response
        response.success = bool(await waiter)
        q = self.backend.joint_array()
        error = (float(np.max(np.abs(q - self.driver.reset_target)))
                 if q is not None else float('nan'))
        response.message = (f'reset {"done" if response.success else "failed"}: largest '
                            f'joint error {error:.4f} rad')
        self.get_logger().info(response.message)
        return response

    def on_shutdown(self) -> None:
        """Stop the control cycle, then send zero joint velocities: the last command sent."""
        self.loop.stop(timeout_s=1.0)
        with self._lock:
            self._closed = True
            self.driver.stop(time.monotonic())
            if self.backend.joint_angles() is not None:
                self.backend.stop()
            for waiter in self._reset_waiters:
                waiter.set_result(False)
            self._reset_waiters.clear()
        if self._command_publisher is not None:  # bridge: delivered before the node goes
            self._command_publisher.wait_for_all_acked(Duration(seconds=SHUTDOWN_ACK_S))

    def destroy_node(self) -> None:
        """Stop the control cycle too (also when on_shutdown did not run)."""
        loop = getattr(self, 'loop', None)  # absent if the constructor failed
        if loop is not None:
            loop.stop(timeout_s=1.0)
        super().destroy_node()


def _init_rospy() -> None:
    """Initialise a rospy node for intera_interface if rospy is here (UNTESTED).

    Without rospy, InteraLimbBackend reports the missing intera_interface (or, in tests, a
    stand-in intera_interface needs no rospy).
    """
    try:
        import rospy
    except ImportError:
        return
    if not rospy.core.is_initialized():
        rospy.init_node('rig_sawyer_driver', anonymous=True, disable_signals=True)


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the sawyer_driver node until SIGINT/SIGTERM."""
    return run_node(SawyerDriverNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
