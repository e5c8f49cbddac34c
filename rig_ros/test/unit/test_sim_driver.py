"""Tests of sim stepping (lockstep, idle republishing, real time, watchdog) and resets."""

import numpy as np
import pytest

from rig_ros import tasks
from rig_ros.sim.driver import SimDriver, SimDriverConfig
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig


@pytest.fixture(scope='module')
def sims():
    """Give a sim for the driver and a twin driven directly (building one costs ~0.7 s)."""
    with SawyerSim(SawyerSimConfig()) as driven, SawyerSim(SawyerSimConfig()) as twin:
        yield driven, twin


def test_lockstep_steps_per_command_and_republishes_when_idle(sims):
    sim, twin = sims
    driver = SimDriver(sim, SimDriverConfig(lockstep=True, idle_frame_period_s=0.2,
                                            reset_frame_delay_s=0.04))
    driver.reset()
    twin.reset()  # the same settled start: the two evolve identically
    assert driver.tick_period_s == pytest.approx(0.01)
    assert driver.tick(0.0)  # nothing published yet: a frame is due
    driver.frame_published(0.0)
    assert not driver.tick(0.19) and driver.tick(0.2)
    driver.frame_published(1.0, reset=True)  # sooner after a reset, then idle again
    assert not driver.tick(1.03) and driver.tick(1.04)
    driver.frame_published(1.04)
    assert not driver.tick(1.2) and driver.tick(1.24)
    start = sim.state_vector()
    for velocity in ([0.1, -0.05], [0.1, -0.05], [1.0, 0.0]):  # the last one is clipped
        assert driver.command(np.array(velocity), 0.3)
        twin.step_velocity(velocity)
        np.testing.assert_array_equal(sim.state_vector(), twin.state_vector())
    moved = sim.state_vector() - start
    # v * 0.1 s per command, the last clipped to 0.2 m/s; the hand lags its target by ~2 mm.
    np.testing.assert_allclose(moved, [0.01 + 0.01 + 0.02, -0.01], atol=0.004)
    for bad in ([np.nan, 0.0], [0.0, np.inf], [0.1]):
        with pytest.raises(ValueError, match='finite'):
            driver.command(np.array(bad), 0.4)
    np.testing.assert_array_equal(sim.state_vector(), twin.state_vector())


def test_real_time_holds_the_latest_command_until_the_watchdog(sims):
    sim, _ = sims
    driver = SimDriver(sim, SimDriverConfig(lockstep=False, command_timeout_s=0.2))
    driver.reset()
    assert driver.tick_period_s == pytest.approx(0.1)
    start = sim.state_vector()
    assert not driver.command(np.array([0.1, 0.0]), 10.0)
    np.testing.assert_array_equal(sim.state_vector(), start)  # no step until the tick
    assert driver.tick(10.1) and driver.tick(10.2)
    after_two = sim.state_vector()
    assert after_two[0] - start[0] == pytest.approx(0.02, abs=0.003)
    assert driver.tick(10.25)  # 0.25 s old: zero velocity, the hand settles and stops
    settled = sim.state_vector()
    assert driver.tick(10.35)
    assert abs(sim.state_vector()[0] - settled[0]) < 1e-3


def test_reset_is_seeded_and_clears_the_command(sims):
    sim, _ = sims
    config = SimDriverConfig(lockstep=False)
    driver = SimDriver(sim, config)
    outcomes = [driver.reset() for _ in range(3)]
    seeds = [outcome.seed for outcome in outcomes]
    assert len(set(seeds)) == 3 and not any(outcome.to_goal for outcome in outcomes)
    assert outcomes[0].describe() == f'reset with seed {seeds[0]} to the start'
    assert SimDriver(sim, config).reset().seed == seeds[0]
    home = sim.state_vector()
    driver.command(np.array([0.2, 0.2]), 0.0)
    driver.reset()
    driver.tick(0.05)  # the command is gone: nothing moves
    np.testing.assert_allclose(sim.state_vector(), home, atol=1e-3)


@pytest.fixture(scope='module')
def pusher():
    """Give a pusher sim that settles quickly (many resets to a goal)."""
    with SawyerSim(SawyerSimConfig(task='pusher', seed=4, settle_steps=40)) as sim:
        yield sim


def test_reset_to_goal_fraction_is_honoured_and_seeded(pusher):
    config = SimDriverConfig(lockstep=False, reset_to_goal_probability=0.3)
    driver = SimDriver(pusher, config)
    outcomes = [driver.reset() for _ in range(200)]
    to_goal = [outcome.to_goal for outcome in outcomes]
    assert 0.2 <= np.mean(to_goal) <= 0.4, np.mean(to_goal)  # ~3 standard deviations
    # Seeded: a second driver on the same sim seed makes the same resets, goals included.
    again = SimDriver(pusher, config)
    for outcome in outcomes[:20]:
        repeat = again.reset()
        assert (repeat.seed, repeat.to_goal) == (outcome.seed, outcome.to_goal)
        if outcome.to_goal:
            np.testing.assert_array_equal(repeat.goal_state, outcome.goal_state)
    never = SimDriver(pusher, SimDriverConfig(lockstep=False))
    assert not any(never.reset().to_goal for _ in range(20))


def test_a_reset_to_goal_puts_the_scene_in_a_goal_state(pusher):
    driver = SimDriver(pusher, SimDriverConfig(lockstep=False, reset_to_goal_probability=1.0))
    for _ in range(3):
        outcome = driver.reset()
        assert outcome.to_goal and outcome.goal_state.shape == (4,)
        # The hand lands within ~1 mm of the goal (settling), the puck exactly on it.
        np.testing.assert_allclose(pusher.state_vector()[:2], outcome.goal_state[:2], atol=2e-3)
        np.testing.assert_allclose(pusher.state_vector()[2:], outcome.goal_state[2:], atol=1e-9)
        assert 'to a sampled goal state [' in outcome.describe()
    # The goal is the one the reset's seed samples: a twin reset with that seed agrees.
    pusher.reset(seed=outcome.seed)
    pusher.rng.random()  # the draw that chose the goal
    np.testing.assert_array_equal(pusher.sample_goal_state(), outcome.goal_state)
    # An ordinary reset is the start, not the goal.
    SimDriver(pusher, SimDriverConfig(lockstep=False)).reset()
    assert not np.allclose(pusher.state_vector(), outcome.goal_state, atol=1e-2)


def test_a_robot_like_reset_keeps_the_puck_and_puts_the_hand_in_its_goal_box(pusher):
    driver = SimDriver(pusher, SimDriverConfig(lockstep=False, keep_objects=True,
                                               hand_to_goal_box=True))
    first = driver.reset()  # nothing to keep yet: the puck at its start, the hand in the box
    spec = tasks.task('pusher')
    start_puck = pusher.state_vector()[2:].copy()
    for _ in range(3):
        pusher.step_velocity(np.array([0.0, 0.2]))  # the hand goes away; push the puck aside
    pushed = np.array([0.12, 0.68])
    pusher.set_state_vector(np.concatenate([pusher.state_vector()[:2], pushed]))
    outcome = driver.reset()
    state = pusher.state_vector()
    np.testing.assert_allclose(state[2:], pushed, atol=1e-6)  # the puck stays where it was
    assert np.all(state[:2] >= np.array(spec.hand_goal_low) - 2e-3)
    assert np.all(state[:2] <= np.array(spec.hand_goal_high) + 2e-3)
    assert outcome.start_state is not None and not outcome.to_goal
    assert 'with the hand and pucks at [' in outcome.describe()
    np.testing.assert_allclose(first.start_state[2:], start_puck, atol=1e-6)
    # Off by default: the start, nothing kept.
    plain = SimDriver(pusher, SimDriverConfig(lockstep=False))
    plain.reset()
    pusher.set_state_vector(np.concatenate([pusher.state_vector()[:2], pushed]))
    assert plain.reset().start_state is None
    assert not np.allclose(pusher.state_vector()[2:], pushed)


def test_config_rejects_bad_periods():
    with pytest.raises(ValueError, match='idle_frame_period_s'):
        SimDriverConfig(idle_frame_period_s=0.0)
    with pytest.raises(ValueError, match='reset_frame_delay_s'):
        SimDriverConfig(reset_frame_delay_s=-1.0)
    with pytest.raises(ValueError, match='command_timeout_s'):
        SimDriverConfig(command_timeout_s=float('inf'))
    for bad in (-0.1, 1.5, float('nan'), True):
        with pytest.raises(ValueError, match='reset_to_goal_probability'):
            SimDriverConfig(reset_to_goal_probability=bad)
