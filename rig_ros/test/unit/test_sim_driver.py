"""Tests of sim stepping: lockstep per command, idle republishing, real time with a watchdog."""

import numpy as np
import pytest

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
    seeds = [driver.reset() for _ in range(3)]
    assert len(set(seeds)) == 3
    assert [SimDriver(sim, config).reset() for _ in range(1)] == seeds[:1]
    home = sim.state_vector()
    driver.command(np.array([0.2, 0.2]), 0.0)
    driver.reset()
    driver.tick(0.05)  # the command is gone: nothing moves
    np.testing.assert_allclose(sim.state_vector(), home, atol=1e-3)


def test_config_rejects_bad_periods():
    with pytest.raises(ValueError, match='idle_frame_period_s'):
        SimDriverConfig(idle_frame_period_s=0.0)
    with pytest.raises(ValueError, match='reset_frame_delay_s'):
        SimDriverConfig(reset_frame_delay_s=-1.0)
    with pytest.raises(ValueError, match='command_timeout_s'):
        SimDriverConfig(command_timeout_s=float('inf'))
