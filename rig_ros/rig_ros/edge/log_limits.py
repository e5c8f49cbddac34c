"""Rate limits for log lines about bad input: each distinct problem is reported, floods are not.

rclpy's `throttle_duration_sec` throttles per call site, so a second, different problem within
the period goes unreported. `KeyedThrottle` throttles per key (e.g. the error text): a
repeated problem is logged once per period, a new one at once, and at most `max_keys`
distinct problems per period (then one line says that more were suppressed).
"""

import time
from typing import Callable, Optional


class KeyedThrottle:
    """Decide whether a log line about `key` is due."""

    def __init__(self, period_s: float = 5.0, max_keys: int = 32,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self.max_keys = max_keys
        self._clock = clock
        self._last: dict[str, float] = {}
        self.suppressed = 0  # lines suppressed since the last one logged

    def due(self, key: str, now: Optional[float] = None) -> bool:
        """Return True if a line about `key` should be logged now (and note it)."""
        now = self._clock() if now is None else now
        self._last = {k: t for k, t in self._last.items() if now - t < self.period_s}
        if key in self._last or len(self._last) >= self.max_keys:
            self.suppressed += 1
            return False
        self._last[key] = now
        return True

    def take_suppressed(self) -> int:
        """Return and reset the count of suppressed lines (to mention in the next line)."""
        count, self.suppressed = self.suppressed, 0
        return count


def suffix(throttle: KeyedThrottle) -> str:
    """Return ' [N similar lines suppressed]' when lines were suppressed, else ''."""
    count = throttle.take_suppressed()
    return f' [{count} similar lines suppressed]' if count else ''
