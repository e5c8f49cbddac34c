"""`SequenceGaps`: messages a subscriber never saw, from its publishers' sequence numbers.

rmw gives each message the publisher's gid and a sequence number (`MessageInfo`); a jump in
one publisher's numbers is the count of its messages this subscriber missed (replaced by a
newer one in a keep-last queue, or lost by the transport). Plain Python: testable without ROS.
"""

from typing import Any, Optional


class SequenceGaps:
    """Counts missed messages per publisher; follows at most `max_publishers` of them."""

    def __init__(self, max_publishers: int = 16) -> None:
        self.max_publishers = max_publishers
        self.missed = 0
        self._last: dict[bytes, int] = {}  # publisher gid -> last sequence number seen

    def note(self, gid: Optional[Any], sequence: Optional[int]) -> int:
        """Note a message's publisher and sequence number; return how many were missed."""
        if gid is None or sequence is None:
            return 0
        key = bytes(gid.get('data', b'')) if isinstance(gid, dict) else bytes(gid)
        last = self._last.pop(key, None)
        if len(self._last) >= self.max_publishers:
            self._last.pop(next(iter(self._last)))  # the least recent publisher goes
        self._last[key] = sequence
        missed = sequence - last - 1 if last is not None and sequence > last else 0
        self.missed += missed
        return missed
