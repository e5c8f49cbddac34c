"""The operator: the one rclpy node a session (`rig_ros.run.session`) drives the graph through.

It does what a person at the robot would do, through the graph's own interfaces and nothing
else: watches the learner (`rig/learner_status`) and the fleet's transitions, switches a
robot's policy on and off (`policy/activate`), resets the robot (`robot/reset`), renders a
goal state in the sim (`sim/goal_state` -> `sim/goal_image`), sends goal images
(`rig/goal_image`) and reads where the hand ended (`robot/state`, `sim/ground_truth`).

The node spins in its own rclpy context on a background thread; every method that waits takes
a timeout and raises `OperatorTimeout` when it passes. Names are those of `rig_ros.graph`,
under the robot's namespace (`robot_namespace`) or the fleet's.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import time
from typing import Any, Callable, Optional

from geometry_msgs.msg import PointStamped
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from rig_msgs.msg import Goal, Transition
from rig_ros import graph
from rig_ros.edge.background import BackgroundNode
from rig_ros.interfaces import names
from rig_ros.interfaces.names import LEARNER_STATUS_TOPIC
from rig_ros.interfaces.qos import (
    GOAL_READER_QOS, LATCHED_QOS, SENSOR_QOS, STATE_READER_QOS, TRANSITION_QOS)

FRAMES_KEPT = 2000
# A transition's stamp went through float seconds (the policy runtime's clock): it matches its
# frame's stamp to well under a microsecond; frames are tens of milliseconds apart.
STAMP_TOLERANCE_NS = 100_000
POLL_S = 0.02


class OperatorTimeout(RuntimeError):
    """Something the operator waited for did not happen in time."""


def stamp_ns(stamp: Any) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclasses.dataclass
class Frame:
    """What the sim published for one frame: the hand, and the state vector if it came."""

    hand_xy: np.ndarray
    state: Optional[np.ndarray] = None


class _Robot:
    """One robot chain's interfaces and what the operator has seen of it."""

    def __init__(self, node: Node, namespace: str) -> None:
        self.namespace = namespace
        name = lambda relative: graph.join_names(namespace, relative)  # noqa: E731
        self.lock = threading.Lock()
        self.frames: collections.OrderedDict[int, Frame] = collections.OrderedDict()
        self.last_frame_ns = 0
        self.goal: Optional[Goal] = None
        self.goal_images: list[Image] = []
        self.reset_client = node.create_client(Trigger, name(names.RESET_SERVICE))
        self.activate_client = node.create_client(SetBool, name(names.ACTIVATE_SERVICE))
        self.goal_state_publisher = node.create_publisher(
            Float64MultiArray, name(names.SIM_GOAL_STATE_TOPIC), STATE_READER_QOS)
        self.goal_image_publisher = node.create_publisher(
            Image, name(names.GOAL_IMAGE_TOPIC), SENSOR_QOS)
        node.create_subscription(PointStamped, name(names.ROBOT_STATE_TOPIC),
                                 self.state_callback, STATE_READER_QOS)
        node.create_subscription(Float64MultiArray, name(names.GROUND_TRUTH_TOPIC),
                                 self.truth_callback, STATE_READER_QOS)
        node.create_subscription(Goal, name(names.GOAL_TOPIC), self.goal_callback,
                                 GOAL_READER_QOS)
        node.create_subscription(Image, name(names.SIM_GOAL_IMAGE_TOPIC),
                                 self.goal_image_callback, LATCHED_QOS)

    def state_callback(self, msg: PointStamped) -> None:
        """Keep the hand position of a frame, by the frame's stamp."""
        with self.lock:
            self.last_frame_ns = stamp_ns(msg.header.stamp)
            self.frames[self.last_frame_ns] = Frame(np.array([msg.point.x, msg.point.y]))
            while len(self.frames) > FRAMES_KEPT:
                self.frames.popitem(last=False)

    def truth_callback(self, msg: Float64MultiArray) -> None:
        """Attach a state vector to the frame whose hand came just before it (same publish)."""
        with self.lock:
            frame = self.frames.get(self.last_frame_ns)
            if frame is not None and frame.state is None:
                frame.state = np.asarray(msg.data, float)

    def goal_callback(self, msg: Goal) -> None:
        """Keep the robot's current goal."""
        with self.lock:
            self.goal = msg

    def goal_image_callback(self, msg: Image) -> None:
        """Keep the sim's goal renders."""
        with self.lock:
            self.goal_images.append(msg)


class Operator:
    """A small rclpy node, spun on a thread, with blocking helpers for a session."""

    def __init__(self, robots: int = 1, namespace: str = '',
                 alive: Callable[[], None] = lambda: None) -> None:
        """Join the graph (ROS_DOMAIN_ID from the environment).

        alive: called while waiting; raises to abort a wait (e.g. a node of the graph died).
        """
        self._alive = alive
        self._background = BackgroundNode(names.OPERATOR_NODE, thread_name='operator')
        self.context = self._background.context
        self.node = self._background.node
        self._lock = threading.Lock()
        self.status: dict[str, Any] = {}
        self.transitions = 0
        self.policy_versions: set[int] = set()
        self._steps: dict[tuple[str, int, int], int] = {}  # (robot, episode, step) -> stamp
        fleet = graph.fleet_namespace(namespace)
        self.robots = [_Robot(self.node, graph.robot_namespace(i, namespace))
                       for i in range(robots)]
        self.node.create_subscription(String, graph.join_names(fleet, LEARNER_STATUS_TOPIC),
                                      self._status_callback, LATCHED_QOS)
        self.node.create_subscription(Transition, graph.join_names(
            fleet, names.TRANSITION_TOPIC), self._transition_callback, TRANSITION_QOS)

    def close(self) -> None:
        """Leave the graph."""
        self._background.close()

    # What the operator watches.

    def _status_callback(self, msg: String) -> None:
        with self._lock:
            self.status = json.loads(msg.data)

    def _transition_callback(self, msg: Transition) -> None:
        with self._lock:
            self.transitions += 1
            self.policy_versions.add(int(msg.policy_version))
            key = (msg.robot_id, int(msg.episode_id), int(msg.step_index))
            self._steps[key] = stamp_ns(msg.header.stamp)
            if len(self._steps) > FRAMES_KEPT:
                self._steps.pop(next(iter(self._steps)))

    def learner_status(self) -> dict[str, Any]:
        """Return the learner's latest status (empty before the first)."""
        with self._lock:
            return dict(self.status)

    def transitions_seen(self) -> int:
        """Count the transitions received from every robot since the operator started."""
        with self._lock:
            return self.transitions

    def check(self) -> None:
        """Raise what the `alive` callback raises (a node of the graph died)."""
        self._alive()

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `predicate` until truthy (returned); OperatorTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self._alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise OperatorTimeout(f'{what}: nothing after {timeout:.0f} s')
            time.sleep(POLL_S)

    # What the operator does.

    def _call(self, client: Any, request: Any, timeout: float, what: str) -> Any:
        self.wait(client.service_is_ready, timeout, f'{what}: service {client.srv_name}')
        future = client.call_async(request)
        self.wait(future.done, timeout, what)
        response = future.result()
        if response is None or not response.success:
            raise RuntimeError(f'{what} failed: {getattr(response, "message", None)}')
        return response

    def wait_ready(self, timeout: float) -> None:
        """Wait until every robot's reset and activate services are there."""
        for robot in self.robots:
            for client in (robot.reset_client, robot.activate_client):
                self.wait(client.service_is_ready, timeout, f'service {client.srv_name}')

    def set_active(self, robot: int, active: bool, timeout: float = 10.0) -> None:
        """Switch a robot's policy on or off (policy/activate)."""
        self._call(self.robots[robot].activate_client, SetBool.Request(data=active), timeout,
                   f'{"activating" if active else "deactivating"} robot {robot}')

    def reset(self, robot: int, timeout: float = 10.0) -> None:
        """Reset a robot (robot/reset)."""
        self._call(self.robots[robot].reset_client, Trigger.Request(), timeout,
                   f'resetting robot {robot}')

    def render_goal(self, robot: int, goal_state: np.ndarray, timeout: float = 10.0) -> Image:
        """Return the sim's render of `goal_state` (sim/goal_state -> sim/goal_image)."""
        chain = self.robots[robot]
        with chain.lock:
            seen = len(chain.goal_images)
        self.wait(lambda: chain.goal_state_publisher.get_subscription_count() > 0, timeout,
                  f'a subscriber of {chain.goal_state_publisher.topic_name}')
        chain.goal_state_publisher.publish(Float64MultiArray(
            data=[float(v) for v in goal_state]))

        def rendered() -> Optional[Image]:
            with chain.lock:
                return chain.goal_images[-1] if len(chain.goal_images) > seen else None
        return self.wait(rendered, timeout, f'the render of goal state {list(goal_state)}')

    def current_goal(self, robot: int) -> Optional[Goal]:
        """Return the robot's latest goal (rig/goal)."""
        chain = self.robots[robot]
        with chain.lock:
            return chain.goal

    def send_goal_image(self, robot: int, image: Image, timeout: float = 30.0,
                        resend_s: float = 2.0) -> Goal:
        """Send a goal image on rig/goal_image until the scheduler publishes its goal.

        The image topic is best effort (a camera's QoS): it is sent again every `resend_s`
        while no new image goal has appeared.
        """
        chain = self.robots[robot]
        before = self.current_goal(robot)
        last_id = -1 if before is None else int(before.episode_id)
        self.wait(lambda: chain.goal_image_publisher.get_subscription_count() > 0, timeout,
                  f'a subscriber of {chain.goal_image_publisher.topic_name}')
        deadline = time.monotonic() + timeout
        while True:
            chain.goal_image_publisher.publish(image)
            try:
                return self.wait(lambda: self._new_image_goal(robot, last_id),
                                 min(resend_s, max(0.0, deadline - time.monotonic())),
                                 f'the goal of the image sent to robot {robot}')
            except OperatorTimeout:
                if time.monotonic() >= deadline:
                    raise

    def _new_image_goal(self, robot: int, last_id: int) -> Optional[Goal]:
        goal = self.current_goal(robot)
        if goal is not None and goal.source == 'image' and int(goal.episode_id) > last_id:
            return goal
        return None

    def wait_step(self, robot: int, steps: int, timeout: float) -> int:
        """Wait until the robot's policy finished `steps` steps of its current goal.

        Returns the stamp (ns) of the frame after the last of them (the transition's stamp:
        its next observation's frame). The goal may change meanwhile; the newest counts.
        """
        robot_id = self.robots[robot].namespace.strip('/')

        def done() -> Optional[int]:
            goal = self.current_goal(robot)
            if goal is None:
                return None
            with self._lock:
                return self._steps.get((robot_id, int(goal.episode_id), steps - 1))
        return self.wait(done, timeout, f'step {steps} of robot {robot}')

    def frame_at(self, robot: int, stamp: int, timeout: float = 5.0) -> Frame:
        """Return the sim's hand (and state vector) of the frame stamped `stamp` (+- 0.1 ms)."""
        chain = self.robots[robot]

        def found() -> Optional[Frame]:
            with chain.lock:
                near = [frame for frame_ns, frame in reversed(chain.frames.items())
                        if abs(frame_ns - stamp) <= STAMP_TOLERANCE_NS]
            return near[0] if near and near[0].state is not None else None
        return self.wait(found, timeout, f'the sim state of the frame at {stamp} ns')

    def last_frame_stamp(self, robot: int) -> int:
        """Return the stamp (ns) of the newest frame seen of the robot (0 before the first)."""
        chain = self.robots[robot]
        with chain.lock:
            return chain.last_frame_ns

    def latest_frame(self, robot: int, after_ns: int = 0, timeout: float = 10.0) -> Frame:
        """Return the newest frame stamped after `after_ns`, with its state vector."""
        chain = self.robots[robot]

        def found() -> Optional[Frame]:
            with chain.lock:
                if chain.last_frame_ns <= after_ns:
                    return None
                frame = chain.frames.get(chain.last_frame_ns)
                return frame if frame is not None and frame.state is not None else None
        return self.wait(found, timeout, f'a frame of robot {robot}')
