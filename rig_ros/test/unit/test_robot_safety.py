"""Safety filter, driver state machine and backends, without ROS."""

import math

import numpy as np
import pytest

from rig_ros.robot.backends import (
    BridgeTopicsBackend, InteraLimbBackend, parse_joint_command, POSITION_MODE, VELOCITY_MODE)
from rig_ros.robot.control import ControllerConfig
from rig_ros.robot.driver import DriverConfig, Mode, SawyerDriver
from rig_ros.robot.fake_arm import FakeLimb, FakeSawyerArm, NEUTRAL_JOINT_POSITIONS
from rig_ros.robot.kinematics import JOINT_NAMES
from rig_ros.robot.safety import SafetyConfig, SafetyFilter, Verdict

RESET = (-0.297, -1.0206, 0.0393, 1.7965, -0.0288, 0.7954, 3.0729)  # tool (0.6, 0, 0.12)
SAFETY = SafetyConfig(box_low=(0.45, -0.2, 0.05), box_high=(0.8, 0.2, 0.3),
                      max_speed_m_s=0.2, reset_joint_positions=RESET)
STEPS = 10_000

pytestmark = pytest.mark.robot  # `make test-robot` runs these alone


def inside(config: SafetyConfig, p: np.ndarray) -> bool:
    return bool(np.all(p >= config.inner_low - 1e-12) and np.all(p <= config.inner_high + 1e-12))


def run_filter(commands: callable, steps: int = STEPS, seed: int = 0) -> np.ndarray:
    """Integrate filtered commands exactly (p += v * horizon); return every position."""
    safety = SafetyFilter(SAFETY)
    safety.set_active(True)
    rng = np.random.default_rng(seed)
    p = np.array([0.6, 0.0, 0.12])
    positions = np.empty((steps, 3))
    for step in range(steps):
        now = step * SAFETY.horizon_s
        safety.command(commands(rng, p), now)
        result = safety.current(p, now)
        assert np.linalg.norm(result.velocity) <= SAFETY.max_speed_m_s + 1e-12
        p = p + result.velocity * SAFETY.horizon_s
        positions[step] = p
    return positions


def test_random_commands_never_leave_the_box():
    positions = run_filter(lambda rng, p: rng.uniform(-2.0, 2.0, 3))
    assert all(inside(SAFETY, p) for p in positions)
    # The commands did explore: the tool reached near every wall.
    assert np.all(positions.min(0) < SAFETY.inner_low + 0.03)
    assert np.all(positions.max(0) > SAFETY.inner_high - 0.03)


def test_adversarial_outward_commands_never_leave_the_box():
    centre = (np.array(SAFETY.box_low) + np.array(SAFETY.box_high)) / 2

    def outward(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
        direction = p - centre + rng.normal(scale=0.01, size=3)
        return direction / np.linalg.norm(direction) * rng.uniform(0.1, 5.0)

    positions = run_filter(outward)
    assert all(inside(SAFETY, p) for p in positions)
    # Pressed against the walls, it slides into a corner and stays there.
    assert np.min(np.abs(np.r_[positions[-1] - SAFETY.inner_low,
                               SAFETY.inner_high - positions[-1]])) < 1e-9


def test_outside_the_box_only_inward_motion_passes():
    safety = SafetyFilter(SAFETY)
    outside = np.array([0.9, 0.0, 0.12])  # beyond box_high x
    result = safety.clip([0.1, 0.05, 0.0], outside)
    assert result.velocity[0] == 0.0 and result.velocity[1] == 0.05
    assert safety.clip([-0.1, 0.0, 0.0], outside).velocity[0] == -0.1


def test_speed_cap_keeps_direction():
    safety = SafetyFilter(SAFETY)
    result = safety.clip([0.3, -0.4, 0.0], [0.6, 0.0, 0.12])
    assert result.verdict is Verdict.CLIPPED
    np.testing.assert_allclose(result.velocity, [0.12, -0.16, 0.0])


def test_watchdog_inactive_stop_latch_and_bad_commands():
    safety = SafetyFilter(SAFETY)
    p = [0.6, 0.0, 0.12]
    assert safety.command([0.1, 0.0, 0.0], 0.0)
    assert safety.current(p, 0.0).verdict is Verdict.INACTIVE  # nothing before activation
    safety.set_active(True)
    assert safety.current(p, 0.0).verdict is Verdict.NO_COMMAND  # activation drops old ones
    safety.command([0.1, 0.0, 0.0], 1.0)
    assert safety.current(p, 1.0 + 0.19).verdict is Verdict.OK
    stale = safety.current(p, 1.0 + 0.21)
    assert stale.verdict is Verdict.STALE and not np.any(stale.velocity)
    assert not safety.command([math.nan, 0.0, 0.0], 2.0)
    assert not safety.command([0.1, 0.0], 2.0)
    safety.command([0.1, 0.0, 0.0], 3.0)
    safety.stop()
    safety.command([0.1, 0.0, 0.0], 3.0)
    assert safety.current(p, 3.0).verdict is Verdict.STOPPED
    safety.set_active(True)  # re-arm
    safety.command([0.1, 0.0, 0.0], 4.0)
    assert safety.current(p, 4.0).verdict is Verdict.OK


@pytest.mark.parametrize('kwargs, message', [
    ({'box_low': (0.8, -0.2, 0.05)}, 'below box_high'),
    ({'max_speed_m_s': 2.0}, 'at most'),
    ({'watchdog_s': 0.0}, 'watchdog_s'),
    ({'reset_joint_positions': (0.0,) * 6}, 'reset_joint_positions'),
])
def test_safety_config_refuses_bad_limits(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SafetyConfig(**kwargs)


def test_driver_refuses_a_reset_pose_outside_the_box():
    with pytest.raises(ValueError, match='outside the workspace box'):
        SawyerDriver(DriverConfig(), SafetyConfig(reset_joint_positions=NEUTRAL_JOINT_POSITIONS,
                                                  box_low=(0.5, -0.2, 0.05)), ControllerConfig())
    with pytest.raises(ValueError, match='at least 100'):
        DriverConfig(command_rate_hz=50.0)


class Loop:
    """The driver against a FakeSawyerArm, 100 Hz, in simulated time."""

    def __init__(self) -> None:
        self.driver = SawyerDriver(DriverConfig(), SAFETY, ControllerConfig())
        self.arm = FakeSawyerArm()
        self.now = 0.0
        self.sent = 0

    def run(self, duration_s: float, command=None) -> np.ndarray:
        tools = []
        for _ in range(round(duration_s / 0.01)):
            self.now += 0.01
            self.arm.step(self.now)
            self.driver.state_received(self.now)
            if command is not None:
                self.driver.command(np.array(command, dtype=float), self.now)
            result = self.driver.tick(self.arm.q.copy(), self.now)
            if result.joint_velocities is not None:
                self.sent += 1
                payload = BridgeTopicsBackend(lambda _: None).velocity_command(
                    dict(zip(JOINT_NAMES, result.joint_velocities)))
                self.arm.command(payload, self.now)
            tools.append(self.driver.kinematics.forward(self.arm.q).position)
        return np.array(tools)


def test_driver_state_machine_against_the_fake_arm():
    loop = Loop()
    start = loop.arm.q.copy()
    loop.run(1.0, [0.1, 0.0, 0.0])
    assert loop.sent == 0 and np.array_equal(loop.arm.q, start)  # nothing before activation
    assert loop.driver.request_reset(loop.now) == (False, 'inactive: call driver/activate first')
    loop.driver.set_active(True, loop.now)
    assert loop.driver.request_reset(loop.now)[0]
    loop.run(6.0)
    assert loop.driver.last_reset_ok is True and loop.driver.mode is Mode.RUNNING
    assert np.max(np.abs(loop.arm.q - np.array(RESET))) < 0.02
    tools = loop.run(1.0, [0.0, 0.1, 0.0])
    velocity = (tools[-1] - tools[49]) / 0.5
    assert velocity[1] / np.linalg.norm(velocity) > 0.99
    assert abs(np.linalg.norm(velocity) - 0.1) < 0.015
    # Watchdog: no command for 0.2 s -> zeros; the arm has stopped 0.3 s after the last one.
    loop.run(0.3)
    after = loop.run(0.1)
    assert np.linalg.norm(after[-1] - after[0]) < 5e-4
    # Stop latch: commands do nothing, reset refused until re-armed.
    loop.driver.stop(loop.now)
    before = loop.arm.q.copy()
    loop.run(1.0, [0.1, 0.0, 0.0])
    assert np.max(np.abs(loop.arm.q - before)) < 1e-3
    assert not loop.driver.request_reset(loop.now)[0]
    # Pushed outward for 5 s: the tool stays in the box.
    loop.driver.set_active(True, loop.now)
    tools = loop.run(5.0, [0.2, 0.2, 0.0])
    assert all(SAFETY.contains(p) for p in tools)


def test_bridge_backend_parses_intera_states_and_builds_commands():
    sent = []
    backend = BridgeTopicsBackend(sent.append)
    assert backend.joint_array() is None
    names = ['head_pan'] + list(JOINT_NAMES)
    assert backend.on_joint_states(names, list(range(8)), [0.5] * 8)
    np.testing.assert_array_equal(backend.joint_array(), np.arange(1, 8))
    assert not backend.on_joint_states(['right_gripper_l_finger_joint'], [0.01], [])
    assert not backend.on_joint_states(names, [0.0] * 7, [])
    np.testing.assert_array_equal(backend.joint_array(), np.arange(1, 8))  # kept
    backend.set_joint_velocities(dict(zip(JOINT_NAMES, [0.1] * 7)))
    assert sent[-1].mode == VELOCITY_MODE and sent[-1].names == JOINT_NAMES
    assert sent[-1].velocity == (0.1,) * 7 and sent[-1].position == ()
    backend.stop()
    assert sent[-1].velocity == (0.0,) * 7
    with pytest.raises(ValueError):
        backend.set_joint_velocities(dict(zip(JOINT_NAMES, [math.inf] * 7)))
    assert backend.position_command(dict(zip(JOINT_NAMES, [0.0] * 7))).mode == POSITION_MODE
    with pytest.raises(ValueError, match='mode'):
        parse_joint_command(3, JOINT_NAMES, (), (0.0,) * 7)


def test_fake_arm_holds_position_when_commands_stop():
    arm = FakeSawyerArm(command_timeout_s=0.2)
    backend = BridgeTopicsBackend(lambda _: None)
    arm.command(backend.velocity_command(dict(zip(JOINT_NAMES, [0.5] * 7))), 0.0)
    for step in range(1, 51):
        arm.step(step * 0.01)
    moved_at = arm.q.copy()
    assert arm.timeouts == 1 and np.all(arm.qdot == 0.0) or np.max(np.abs(arm.qdot)) < 0.01
    for step in range(51, 101):
        arm.step(step * 0.01)
    assert np.max(np.abs(arm.q - moved_at)) < 1e-3
    refused = backend.velocity_command(dict(zip(JOINT_NAMES, [0.5] * 7)))
    assert not arm.command(type(refused)(VELOCITY_MODE, ('elbow',), velocity=(1.0,)), 1.0)


def test_fake_arm_loses_no_motion_when_stepped_late():
    # One late call over 0.5 s moves the arm as 50 calls of 10 ms do, and the command timeout
    # (0.2 s) inside the gap takes effect at its time.
    backend = BridgeTopicsBackend(lambda _: None)
    command = backend.velocity_command(dict(zip(JOINT_NAMES, [0.3] * 7)))
    late, steady = FakeSawyerArm(command_timeout_s=0.2), FakeSawyerArm(command_timeout_s=0.2)
    for arm in (late, steady):
        arm.command(command, 0.0)
    late.step(0.5)
    for step in range(1, 51):
        steady.step(step * 0.01)
    moved = late.q - np.array(NEUTRAL_JOINT_POSITIONS)
    assert np.allclose(moved, 0.3 * 0.2, atol=0.3 * 0.03)  # 0.2 s at 0.3 rad/s, less the lag
    assert np.allclose(late.q, steady.q, atol=0.3 * 0.05)
    assert late.timeouts == 1


def test_intera_backend_against_the_limb_stand_in():
    limb = FakeLimb()
    backend = InteraLimbBackend(limb, command_timeout_s=0.2)
    assert limb.arm.command_timeout_s == 0.2
    target = dict(zip(JOINT_NAMES, RESET))
    assert backend.move_to_joint_positions(target, timeout_s=15.0)
    assert np.max(np.abs(backend.joint_array() - np.array(RESET))) < 0.01
    pose = backend.endpoint_pose()
    np.testing.assert_allclose(pose.position, limb.arm.endpoint().position)
    # The driver's loop through the backend, as the node runs it with backend 'intera'.
    driver = SawyerDriver(DriverConfig(backend='intera'), SAFETY, ControllerConfig())
    driver.set_active(True, limb.arm.time)
    tools = []
    for _ in range(100):
        limb.advance(0.01)
        driver.state_received(limb.arm.time)
        driver.command(np.array([-0.1, 0.0, 0.0]), limb.arm.time)
        result = driver.tick(backend.joint_array(), limb.arm.time)
        backend.set_joint_velocities(dict(zip(JOINT_NAMES, result.joint_velocities)))
        tools.append(result.tool.position)
    velocity = (tools[-1] - tools[49]) / 0.5
    assert -velocity[0] / np.linalg.norm(velocity) > 0.99
    assert abs(np.linalg.norm(velocity) - 0.1) < 0.015
    # Commands stop: the stand-in falls back to holding position after its timeout.
    limb.advance(0.5)
    held = backend.joint_array()
    limb.advance(0.5)
    np.testing.assert_allclose(backend.joint_array(), held, atol=1e-6)


def test_intera_backend_says_what_is_missing():
    with pytest.raises(RuntimeError, match='intera_interface'):
        InteraLimbBackend()


@pytest.mark.parametrize('kind', ['random', 'outward'])
def test_driver_keeps_the_fake_arm_in_the_box_for_10k_steps(kind):
    """The box holds on the fake arm (its lag, limits, timeout), not only in the filter."""
    loop = Loop()
    loop.driver.set_active(True, loop.now)
    assert loop.driver.request_reset(loop.now)[0]  # from neutral (outside the box) to the pose
    loop.run(6.0)
    assert loop.driver.last_reset_ok is True
    rng = np.random.default_rng(3)
    centre = (np.array(SAFETY.box_low) + np.array(SAFETY.box_high)) / 2
    tools = []
    for _ in range(STEPS // 10):  # a new command every 0.1 s (the policy's rate), 10K ticks
        tool = loop.driver.kinematics.forward(loop.arm.q).position
        if kind == 'random':
            command = rng.uniform(-0.5, 0.5, 3)
        else:
            direction = tool - centre + rng.normal(scale=0.01, size=3)
            command = direction / np.linalg.norm(direction) * rng.uniform(0.1, 2.0)
        tools.append(loop.run(0.1, command))
    tools = np.concatenate(tools)
    assert len(tools) == STEPS
    assert all(SAFETY.contains(p) for p in tools), tools[[not SAFETY.contains(p) for p in tools]]
