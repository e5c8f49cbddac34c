"""PeriodicLoop: absolute deadlines, skipped cycles when late, errors survived, prompt stop."""

import threading
import time

import pytest

from rig_ros.robot.periodic import PeriodicLoop


class SimulatedTime:
    """A clock that moves only when the loop sleeps or a step says it took time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, duration_s: float) -> None:
        self.sleeps.append(duration_s)
        self.now += duration_s


def run_cycles(costs: list, period_s: float = 0.01, fail_at: tuple = ()):
    """Run a loop whose k-th step takes costs[k] seconds; return (loop, start times)."""
    time_ = SimulatedTime()
    starts: list[float] = []
    errors: list[BaseException] = []
    loop = PeriodicLoop(period_s, lambda: step(), clock=time_.clock, sleep=time_.sleep,
                        on_error=errors.append)

    def step() -> None:
        index = len(starts)
        starts.append(time_.now)
        time_.now += costs[index]
        if index == len(costs) - 1:
            loop.stop()
        if index in fail_at:
            raise RuntimeError(f'cycle {index} failed')

    loop.run()
    return loop, [t - 100.0 for t in starts], errors


def test_cycles_start_on_absolute_deadlines():
    loop, starts, _ = run_cycles([0.003, 0.007, 0.001, 0.0095, 0.002])
    assert starts == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])
    assert loop.cycles == 5 and loop.skipped == 0
    assert loop.max_lateness_s == pytest.approx(0.0)


def test_a_late_cycle_skips_missed_deadlines_instead_of_bursting():
    # The second cycle takes 35 ms, to 45 ms: the deadlines at 20, 30 and 40 ms are dropped,
    # not run back to back; the loop goes on at 50 ms, on the original phase.
    loop, starts, _ = run_cycles([0.001, 0.035, 0.001, 0.001])
    assert starts == pytest.approx([0.0, 0.01, 0.05, 0.06])
    assert loop.skipped == 3


def test_a_failing_step_is_reported_and_the_loop_goes_on():
    loop, starts, errors = run_cycles([0.001] * 4, fail_at=(1, 2))
    assert len(starts) == 4 and loop.errors == 2
    assert [str(error) for error in errors] == ['cycle 1 failed', 'cycle 2 failed']


def test_bad_period_is_refused():
    for period in (0.0, -1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='period_s'):
            PeriodicLoop(period, lambda: None)


def test_thread_runs_at_its_rate_and_stops_promptly():
    count = []
    loop = PeriodicLoop(0.01, lambda: count.append(threading.current_thread().name),
                        name='test_loop')
    loop.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert loop.stop(timeout_s=1.0)
    assert time.monotonic() - started < 0.5
    assert not loop.running
    assert set(count) == {'test_loop'}
    assert len(count) >= 5  # 30 expected; lenient for a loaded 2-core machine
    stopped_at = len(count)
    time.sleep(0.05)
    assert len(count) == stopped_at
