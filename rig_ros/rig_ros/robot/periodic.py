"""`PeriodicLoop`: a fixed-rate loop on its own thread, timed by the monotonic clock.

The real-robot driver's control cycle runs here rather than on an rclpy timer: rclpy's
MultiThreadedExecutor (rclpy 9.1, Kilted wheels) ran a 100 Hz timer at 3-10 Hz as soon as the
node also had a subscription (ros2/rclpy#1452), and a timer on the ROS clock follows wall time
steps. Deadlines are absolute (start + k * period) so the rate does not drift; a cycle late by
less than a period runs at once, and a loop that falls further behind skips the missed cycles
(resuming on the original phase) instead of bursting to catch up.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Optional


class PeriodicLoop:
    """Call `step()` every `period_s` seconds on a daemon thread until `stop()`.

    on_error: called with an exception `step` raised; the loop goes on (the next cycle may
        succeed; a driver that sends nothing makes intera hold position).
    clock / sleep: the monotonic clock and how to wait (default: an Event's wait, so that
        stop is prompt); tests pass simulated ones and call `run()` directly.
    """

    def __init__(self, period_s: float, step: Callable[[], None], *, name: str = 'periodic',
                 on_error: Optional[Callable[[BaseException], None]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Optional[Callable[[float], object]] = None) -> None:
        if not math.isfinite(period_s) or period_s <= 0:
            raise ValueError(f'period_s must be a positive number, got {period_s!r}')
        self.period_s = period_s
        self._step = step
        self._on_error = on_error
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep if sleep is not None else self._stopping.wait
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.cycles = 0
        self.skipped = 0  # cycles dropped because the loop was more than a period behind
        self.errors = 0
        self.max_lateness_s = 0.0  # how late a cycle started, worst case

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Ask the loop to end and wait for the cycle in progress; False if it did not end."""
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def run(self) -> None:
        """Run cycles in the calling thread until `stop()` (what the thread runs)."""
        deadline = self._clock()
        while not self._stopping.is_set():
            lateness = self._clock() - deadline
            self.max_lateness_s = max(self.max_lateness_s, lateness)
            try:
                self._step()
            except Exception as error:  # noqa: BLE001 - reported, the loop must go on
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(error)
            self.cycles += 1
            deadline += self.period_s
            now = self._clock()
            if now - deadline > self.period_s:  # resume at the next deadline still ahead
                missed = math.floor((now - deadline) / self.period_s) + 1
                self.skipped += missed
                deadline += missed * self.period_s
            self._sleep(max(deadline - now, 0.0))
