"""The real-Sawyer driver's logic, without ROS: commands in, joint velocities out, per tick.

`SawyerDriver.tick(joint_angles, now)` runs once per control cycle (>= 100 Hz, faster than
intera's command timeout) and returns the joint velocities to send, or None to send nothing:
- inactive (the start) or stopped (latched): zeros for `release_s`, then nothing, so intera
  falls back to holding position by itself;
- resetting: a joint-space servo to `SafetyConfig.reset_joint_positions`, done within
  `reset_tolerance_rad`;
- running: the latest ee_velocity command through the `SafetyFilter` (watchdog, speed cap,
  workspace box), plus terms that hold the tool's height (planar) and orientation as they
  were after the last reset or activation, through damped least squares and joint limits;
- joint state missing or older than `state_timeout_s`: zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
import enum
import math
from typing import Literal, Optional

import numpy as np

from rig_ros.interfaces.names import HEAD_CAMERA_TOPIC
from rig_ros.robot.control import ControllerConfig, EEVelocityController
from rig_ros.robot.kinematics import (
    JOINT_LOWER, JOINT_UPPER, JOINT_VELOCITY_LIMITS, Pose, SawyerKinematics)
from rig_ros.robot.safety import SafetyConfig, SafetyFilter, Verdict


@dataclass(frozen=True)
class DriverConfig:
    """How the sawyer_driver node runs.

    backend: 'bridge' (ROS 2 topics through ros1_bridge) or 'intera' (intera_interface.Limb
        in this process; needs ROS 1's intera_sdk).
    command_rate_hz: joint commands per second; at least 100 (intera's command timeout).
    tool_offset_m: controlled point, along right_hand's z from right_hand (0.12: the sim's hand).
    planar: ignore linear.z of commands and hold the tool height (RIG's planar tasks).
    state_timeout_s: joint states older than this stop the arm (zeros).
    release_s: after deactivation or a stop, send zeros this long, then nothing.
    reset_tolerance_rad: a reset is done when every joint is this close.
    reset_timeout_s: a reset that takes longer fails (and stops the arm).
    reset_gain: 1/s, joint-space servo gain of the reset.
    reset_speed_fraction: fraction of joint velocity limits the reset uses.
    intera_command_timeout_s: the command timeout set on the robot ('intera' backend).
    camera_source_topic: image topic republished on camera/image_raw (intera's head camera;
        '' for none, e.g. when the graph's camera_topic remaps the pipeline to a camera).
    """

    backend: Literal['bridge', 'intera'] = 'bridge'
    command_rate_hz: float = 100.0
    tool_offset_m: float = 0.12
    planar: bool = True
    state_timeout_s: float = 0.1
    release_s: float = 0.5
    reset_tolerance_rad: float = 0.01
    reset_timeout_s: float = 20.0
    reset_gain: float = 3.0
    reset_speed_fraction: float = 0.3
    intera_command_timeout_s: float = 0.2
    camera_source_topic: str = HEAD_CAMERA_TOPIC

    def __post_init__(self) -> None:
        """Reject bad values, naming the field."""
        if not math.isfinite(self.command_rate_hz) or self.command_rate_hz < 100.0:
            raise ValueError("command_rate_hz must be at least 100 (faster than intera's "
                             f'command timeout), got {self.command_rate_hz!r}')
        for name in ('state_timeout_s', 'release_s', 'reset_tolerance_rad', 'reset_timeout_s',
                     'reset_gain', 'intera_command_timeout_s'):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        if not 0.0 < self.reset_speed_fraction <= 1.0:
            raise ValueError('reset_speed_fraction must be in (0, 1], got '
                             f'{self.reset_speed_fraction!r}')
        if 1.0 / self.command_rate_hz >= self.intera_command_timeout_s:
            raise ValueError('intera_command_timeout_s must exceed the command period')


class Mode(enum.Enum):
    """What the driver is doing."""

    INACTIVE = 'inactive'
    RUNNING = 'running'
    RESETTING = 'resetting'
    STOPPED = 'stopped'


@dataclass(frozen=True)
class TickResult:
    """One cycle's output."""

    joint_velocities: Optional[np.ndarray]  # None: send nothing
    reason: str
    tool: Optional[Pose]


class SawyerDriver:
    """State machine of the real-robot driver (activation, reset, stop latch, watchdog)."""

    def __init__(self, config: DriverConfig, safety: SafetyConfig,
                 controller: ControllerConfig) -> None:
        self.config = config
        self.safety_config = safety
        self.kinematics = SawyerKinematics(config.tool_offset_m)
        self.controller = EEVelocityController(self.kinematics, controller)
        self.safety = SafetyFilter(safety)
        self.reset_target = np.array(safety.reset_joint_positions, dtype=float)
        if np.any(self.reset_target < JOINT_LOWER) or np.any(self.reset_target > JOINT_UPPER):
            raise ValueError('reset_joint_positions are outside the joint limits')
        reset_tool = self.kinematics.forward(self.reset_target).position
        if not (np.all(reset_tool >= safety.inner_low)
                and np.all(reset_tool <= safety.inner_high)):
            raise ValueError(f'reset_joint_positions put the tool at {reset_tool.round(3)}, '
                             f'outside the workspace box {safety.box_low}..{safety.box_high} '
                             f'(less margin {safety.margin_m})')
        self.mode = Mode.INACTIVE
        self._hold: Optional[Pose] = None
        self._release_until = -math.inf
        self._reset_deadline = math.inf
        self.last_reset_ok: Optional[bool] = None
        self._state_time: Optional[float] = None
        self.period_s = 1.0 / config.command_rate_hz

    # -- operator and client requests
    def set_active(self, active: bool, now: float) -> str:
        """Activate (re-arms a latched stop) or deactivate; return a message."""
        if active:
            was_stopped = self.mode is Mode.STOPPED
            self.safety.set_active(True)
            self.mode = Mode.RUNNING
            self._hold = None  # held pose taken at the next tick
            return 're-armed after a stop, active' if was_stopped else 'active'
        self.safety.set_active(False)
        if self.mode is not Mode.STOPPED:
            self.mode = Mode.INACTIVE
        self._release_until = now + self.config.release_s
        return 'inactive'

    def stop(self, now: float) -> str:
        """Latch a stop: no motion until re-activated."""
        self.safety.stop()
        if self.mode is Mode.RESETTING:
            self.last_reset_ok = False
        self.mode = Mode.STOPPED
        self._release_until = now + self.config.release_s
        return 'stopped (latched; driver/activate true re-arms)'

    def command(self, linear: np.ndarray, now: float) -> bool:
        """Store an ee_velocity in m/s, base frame; False if refused (non-finite)."""
        v = np.array(linear, dtype=float)
        if v.shape != (3,) or not np.all(np.isfinite(v)):
            return False
        if self.config.planar:
            v[2] = 0.0
        return self.safety.command(v, now)

    def request_reset(self, now: float) -> tuple[bool, str]:
        """Start a reset; (False, why) when the driver may not move."""
        if self.mode is Mode.STOPPED:
            return False, 'stopped: call driver/activate to re-arm first'
        if self.mode is Mode.INACTIVE:
            return False, 'inactive: call driver/activate first'
        self.mode = Mode.RESETTING
        self._reset_deadline = now + self.config.reset_timeout_s
        self.last_reset_ok = None
        return True, 'resetting'

    def state_received(self, now: float) -> None:
        """Note the arrival time of a joint state."""
        self._state_time = now

    # -- the cycle
    def tick(self, joint_angles: Optional[np.ndarray], now: float) -> TickResult:
        """Return the joint velocities to send this cycle (None: send nothing)."""
        q = None if joint_angles is None else np.asarray(joint_angles, dtype=float)
        tool = self.kinematics.forward(q) if q is not None else None
        if self.mode in (Mode.INACTIVE, Mode.STOPPED):
            send = np.zeros(7) if now <= self._release_until else None
            return TickResult(send, self.mode.value, tool)
        if q is None or self._state_time is None or (
                now - self._state_time > self.config.state_timeout_s):
            if self.mode is Mode.RESETTING and now > self._reset_deadline:
                self._finish_reset(False, now)
            return TickResult(np.zeros(7), 'no fresh joint state', tool)
        if self.mode is Mode.RESETTING:
            return self._reset_tick(q, tool, now)
        if self._hold is None:
            self._hold = tool
        filtered = self.safety.current(tool.position, now)
        if filtered.verdict not in (Verdict.OK, Verdict.CLIPPED):
            return TickResult(np.zeros(7), filtered.verdict.value, tool)
        twist = self.controller.twist(filtered.velocity, tool, self._hold,
                                      self.config.planar)
        twist[:3] = self.safety.clip(twist[:3], tool.position).velocity
        qdot = self.controller.joint_velocities(q, twist, tool, horizon_s=self.period_s * 10)
        return TickResult(qdot, filtered.verdict.value, tool)

    def _reset_tick(self, q: np.ndarray, tool: Pose, now: float) -> TickResult:
        error = self.reset_target - q
        if float(np.max(np.abs(error))) <= self.config.reset_tolerance_rad:
            self._finish_reset(True, now)
            self._hold = tool
            return TickResult(np.zeros(7), 'reset done', tool)
        if now > self._reset_deadline:
            self._finish_reset(False, now)
            return TickResult(np.zeros(7), 'reset timed out', tool)
        limits = JOINT_VELOCITY_LIMITS * self.config.reset_speed_fraction
        qdot = self.config.reset_gain * error
        peak = float(np.max(np.abs(qdot) / limits))
        if peak > 1.0:
            qdot /= peak  # scale the whole vector: a straight line in joint space
        return TickResult(qdot, 'resetting', tool)

    def _finish_reset(self, ok: bool, now: float) -> None:
        self.last_reset_ok = ok
        if ok:
            self.mode = Mode.RUNNING
            self.safety.set_active(True)  # drops commands from before the reset
        else:
            self.stop(now)
