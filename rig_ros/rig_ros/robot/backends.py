"""Ways to reach the Sawyer's arm, behind one interface: `ArmBackend`.

- `InteraLimbBackend` wraps `intera_interface.Limb` (ROS 1, rospy) in-process. intera is
  imported only when the backend is built, with a clear error where it is missing (these
  machines, any ROS 2-only install). UNTESTED against a real robot: tested here against a
  stand-in with Limb's API (`rig_ros.robot.fake_arm.FakeLimb`).
- `BridgeTopicsBackend` is the pure half of the ROS 2 path through ros1_bridge: it parses
  `/robot/joint_states` and `/robot/limb/right/endpoint_state` contents (handed in by the node)
  and builds intera `JointCommand` payloads (mode, names, positions/velocities) that the node
  publishes on `/robot/limb/right/joint_command`. The node converts payloads to messages.

intera's velocity mode needs its command re-sent faster than the command timeout, else the
robot falls back to holding position; callers of `set_joint_velocities` re-send every cycle.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
import math
import time
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import numpy as np

from rig_ros.interfaces.names import (
    ENDPOINT_STATE_TOPIC, JOINT_COMMAND_TOPIC, JOINT_STATES_TOPIC)
from rig_ros.robot.kinematics import JOINT_NAMES

# intera_core_msgs/JointCommand modes.
POSITION_MODE = 1
VELOCITY_MODE = 2
TORQUE_MODE = 3
TRAJECTORY_MODE = 4


@dataclass(frozen=True)
class BridgeConfig:
    """The bridged intera topics (ROS 2 names of the ROS 1 topics through ros1_bridge).

    joint_states_topic: sensor_msgs/JointState of all joints (head_pan, right_j0..6, ...).
    joint_command_topic: intera_core_msgs/JointCommand (or its stand-in, see intera_msgs).
    endpoint_state_topic: intera_core_msgs/EndpointState (or its stand-in).
    message_types: 'auto' (intera_core_msgs when importable), 'intera' or 'standin'.
    """

    joint_states_topic: str = JOINT_STATES_TOPIC
    joint_command_topic: str = JOINT_COMMAND_TOPIC
    endpoint_state_topic: str = ENDPOINT_STATE_TOPIC
    message_types: Literal['auto', 'intera', 'standin'] = 'auto'


@dataclass(frozen=True)
class EndpointPose:
    """intera's endpoint: position (m) and orientation quaternion (x, y, z, w), base frame."""

    position: np.ndarray
    orientation_xyzw: np.ndarray


class ArmBackend(abc.ABC):
    """The arm as the driver sees it: joint state in, joint commands out."""

    joint_names: tuple[str, ...] = JOINT_NAMES

    @abc.abstractmethod
    def joint_angles(self) -> Optional[dict[str, float]]:
        """Return the latest joint angles by name (rad), None before the first state."""

    @abc.abstractmethod
    def joint_velocities(self) -> Optional[dict[str, float]]:
        """Return the latest joint velocities by name (rad/s), None before the first state."""

    @abc.abstractmethod
    def endpoint_pose(self) -> Optional[EndpointPose]:
        """Return the robot's own endpoint pose, None before the first one."""

    @abc.abstractmethod
    def set_joint_velocities(self, velocities: Mapping[str, float]) -> None:
        """Command joint velocities (rad/s) once, in velocity mode; re-send every cycle."""

    @abc.abstractmethod
    def move_to_joint_positions(self, positions: Mapping[str, float], timeout_s: float,
                                tolerance_rad: float = 0.01) -> bool:
        """Move to joint positions, blocking; True once within `tolerance_rad`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Command zero joint velocities."""

    def joint_array(self) -> Optional[np.ndarray]:
        """Return the joint angles as an array in `JOINT_NAMES` order (None if unknown)."""
        angles = self.joint_angles()
        if angles is None or any(name not in angles for name in self.joint_names):
            return None
        return np.array([angles[name] for name in self.joint_names])


def _vector(values: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    result = {}
    for name in names:
        value = float(values[name])
        if not math.isfinite(value):
            raise ValueError(f'{name}: non-finite value {value!r}')
        result[name] = value
    return result


class InteraLimbBackend(ArmBackend):
    """`intera_interface.Limb('right')` behind `ArmBackend` (rospy must be initialised).

    limb: a Limb-like object to wrap (tests pass a stand-in); None imports intera_interface.
    command_timeout_s: passed to `Limb.set_command_timeout` (velocity mode's fallback time).
    """

    def __init__(self, limb: Any = None, command_timeout_s: float = 0.2) -> None:
        if limb is None:
            try:
                import intera_interface  # noqa: F401 - ROS 1 only, absent on ROS 2 installs
            except ImportError as error:
                raise RuntimeError(
                    'backend "intera" needs intera_interface (ROS 1 intera_sdk, rospy) in this '
                    'Python; on a ROS 2-only machine use backend "bridge" through ros1_bridge'
                ) from error
            limb = intera_interface.Limb('right')
        self._limb = limb
        self.joint_names = tuple(limb.joint_names())
        if set(self.joint_names) != set(JOINT_NAMES):
            raise RuntimeError(f'intera limb joints {self.joint_names} are not {JOINT_NAMES}')
        self.joint_names = JOINT_NAMES
        limb.set_command_timeout(command_timeout_s)

    def joint_angles(self) -> Optional[dict[str, float]]:
        """Return the joint angles from the Limb."""
        angles = dict(self._limb.joint_angles())
        return angles or None

    def joint_velocities(self) -> Optional[dict[str, float]]:
        """Return the joint velocities from the Limb."""
        velocities = dict(self._limb.joint_velocities())
        return velocities or None

    def endpoint_pose(self) -> Optional[EndpointPose]:
        """Return the Limb's endpoint pose as arrays."""
        pose = self._limb.endpoint_pose()
        if not pose:
            return None
        position, orientation = pose['position'], pose['orientation']
        return EndpointPose(np.array([position.x, position.y, position.z]),
                            np.array([orientation.x, orientation.y, orientation.z,
                                      orientation.w]))

    def set_joint_velocities(self, velocities: Mapping[str, float]) -> None:
        """Limb.set_joint_velocities with all seven joints."""
        self._limb.set_joint_velocities(_vector(velocities, self.joint_names))

    def move_to_joint_positions(self, positions: Mapping[str, float], timeout_s: float,
                                tolerance_rad: float = 0.01) -> bool:
        """Let the Limb move there (blocking), then check the error."""
        target = _vector(positions, self.joint_names)
        self._limb.move_to_joint_positions(target, timeout=timeout_s, threshold=tolerance_rad)
        angles = self.joint_angles() or {}
        return all(abs(angles.get(name, math.inf) - value) <= tolerance_rad
                   for name, value in target.items())

    def stop(self) -> None:
        """Zero velocities once (intera then holds position after its command timeout)."""
        self._limb.set_joint_velocities(dict.fromkeys(self.joint_names, 0.0))


@dataclass(frozen=True)
class JointCommandPayload:
    """The content of an intera_core_msgs/JointCommand."""

    mode: int
    names: tuple[str, ...]
    position: tuple[float, ...] = ()
    velocity: tuple[float, ...] = ()


class BridgeTopicsBackend(ArmBackend):
    """intera's topics as data: the node feeds messages in and publishes the payloads out.

    publish: called with each `JointCommandPayload` (the node turns it into a message).
    clock: monotonic seconds (for `move_to_joint_positions` and staleness).
    sleep: how `move_to_joint_positions` waits between commands.
    """

    def __init__(self, publish: Callable[[JointCommandPayload], None],
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._publish = publish
        self._clock = clock
        self._sleep = sleep
        self._angles: Optional[dict[str, float]] = None
        self._velocities: Optional[dict[str, float]] = None
        self._endpoint: Optional[EndpointPose] = None
        self.state_time: Optional[float] = None
        self.ignored_states = 0

    # -- incoming
    def on_joint_states(self, names: Sequence[str], positions: Sequence[float],
                        velocities: Sequence[float]) -> bool:
        """Take a sensor_msgs/JointState's content; False if it holds no full arm state.

        intera publishes the arm joints together with head_pan (and gripper joints when one
        is fitted), in its own order; other messages may carry other joints only.
        """
        names = list(names)
        if len(positions) != len(names) or (velocities and len(velocities) != len(names)):
            self.ignored_states += 1
            return False
        index = {name: i for i, name in enumerate(names)}
        if any(name not in index for name in self.joint_names):
            self.ignored_states += 1
            return False
        angles = {name: float(positions[index[name]]) for name in self.joint_names}
        if not all(math.isfinite(v) for v in angles.values()):
            self.ignored_states += 1
            return False
        self._angles = angles
        self._velocities = ({name: float(velocities[index[name]]) for name in self.joint_names}
                            if velocities else dict.fromkeys(self.joint_names, 0.0))
        self.state_time = self._clock()
        return True

    def on_endpoint_state(self, position: Sequence[float],
                          orientation_xyzw: Sequence[float]) -> None:
        """Take an endpoint_state's pose."""
        self._endpoint = EndpointPose(np.array(position, dtype=float),
                                      np.array(orientation_xyzw, dtype=float))

    # -- ArmBackend
    def joint_angles(self) -> Optional[dict[str, float]]:
        """Return the last parsed joint angles."""
        return dict(self._angles) if self._angles is not None else None

    def joint_velocities(self) -> Optional[dict[str, float]]:
        """Return the last parsed joint velocities."""
        return dict(self._velocities) if self._velocities is not None else None

    def endpoint_pose(self) -> Optional[EndpointPose]:
        """Return the last endpoint pose."""
        return self._endpoint

    def velocity_command(self, velocities: Mapping[str, float]) -> JointCommandPayload:
        """Build a velocity-mode JointCommand payload for all seven joints."""
        values = _vector(velocities, self.joint_names)
        return JointCommandPayload(VELOCITY_MODE, self.joint_names,
                                   velocity=tuple(values[name] for name in self.joint_names))

    def position_command(self, positions: Mapping[str, float]) -> JointCommandPayload:
        """Build a position-mode JointCommand payload for all seven joints."""
        values = _vector(positions, self.joint_names)
        return JointCommandPayload(POSITION_MODE, self.joint_names,
                                   position=tuple(values[name] for name in self.joint_names))

    def set_joint_velocities(self, velocities: Mapping[str, float]) -> None:
        """Publish one velocity-mode command."""
        self._publish(self.velocity_command(velocities))

    def move_to_joint_positions(self, positions: Mapping[str, float], timeout_s: float,
                                tolerance_rad: float = 0.01, rate_hz: float = 100.0) -> bool:
        """Re-send position-mode commands at `rate_hz` until within tolerance (blocking).

        Joint states must keep arriving from another thread meanwhile.
        """
        target = _vector(positions, self.joint_names)
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            angles = self._angles
            if angles is not None and all(abs(angles[name] - value) <= tolerance_rad
                                          for name, value in target.items()):
                return True
            self._publish(self.position_command(target))
            self._sleep(1.0 / rate_hz)
        return False

    def stop(self) -> None:
        """Publish one zero-velocity command."""
        self.set_joint_velocities(dict.fromkeys(self.joint_names, 0.0))


def parse_joint_command(mode: int, names: Sequence[str], position: Sequence[float],
                        velocity: Sequence[float]) -> JointCommandPayload:
    """Validate a JointCommand's content as intera would; raise ValueError if it would refuse.

    The receiving side (the fake Sawyer) uses this.
    """
    names = tuple(names)
    if mode == VELOCITY_MODE:
        values = tuple(velocity)
    elif mode == POSITION_MODE:
        values = tuple(position)
    else:
        raise ValueError(f'unsupported JointCommand mode {mode}')
    if len(values) != len(names) or not names:
        raise ValueError(f'{len(names)} names but {len(values)} values for mode {mode}')
    if not all(math.isfinite(v) for v in values):
        raise ValueError('non-finite joint command')
    if mode == VELOCITY_MODE:
        return JointCommandPayload(mode, names, velocity=values)
    return JointCommandPayload(mode, names, position=values)
