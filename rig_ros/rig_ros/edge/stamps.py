"""Message stamps as the float seconds core/ works in."""

from typing import Any


def seconds(stamp: Any) -> float:
    """Return a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
