"""Message sequences at a subscriber: missed messages, MessageInfo callbacks, in-process copies.

`SequenceGaps`: rmw gives each message the publisher's gid and a sequence number
(`MessageInfo`); a jump in one publisher's numbers is the count of its messages this subscriber
missed (replaced by a newer one in a keep-last queue, or lost by the transport).
`with_message_info`: a `(msg, info)` subscription callback that works under every rclpy
executor (rclpy 9's EventsExecutor hands it one `(msg, info)` tuple instead of two arguments).
`HandedOver`: a composed process hands a member's messages to the next member directly; the
same message then also arrives over DDS and must be skipped. Plain Python: testable without ROS.
"""

import collections
import inspect
from typing import Any, Callable, Optional, TypeVar

MessageT = TypeVar('MessageT')
InfoCallback = Callable[[Any, Any], None]


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


class _MessageInfoCallback:
    """Calls `callback(msg, info)` given either `(msg, info)` or one `(msg, info)` tuple."""

    # rclpy picks the callback kind from the signature: two parameters get the MessageInfo.
    __signature__ = inspect.Signature([
        inspect.Parameter('msg', inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter('info', inspect.Parameter.POSITIONAL_ONLY)])

    def __init__(self, callback: InfoCallback) -> None:
        self.callback = callback

    def __call__(self, *args: Any) -> None:
        if len(args) == 1:  # rclpy 9's EventsExecutor: callback((msg, info))
            args = tuple(args[0])
        self.callback(*args)


def with_message_info(callback: InfoCallback) -> InfoCallback:
    """Return `callback(msg, info)` as a subscription callback for any rclpy executor.

    rclpy's SingleThreadedExecutor calls a two-parameter callback with the message and its
    MessageInfo; rclpy 9's EventsExecutor calls it with one `(msg, info)` tuple, which made a
    plain method fail ("SystemError: null argument to internal routine").
    """
    return _MessageInfoCallback(callback)


def header_key(header: Any) -> tuple[int, int, str]:
    """Return a std_msgs/Header as a hashable key: stamp and frame_id."""
    return (int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id))


class HandedOver:
    """One subscriber's messages, handed over in process or taken from DDS, each passed on once.

    A composed process hands a member's message to the next member directly (`deliver`); the
    same message then also arrives over DDS (`taken`) and is skipped (each copy once). Any
    other message taken (another publisher's) is passed on. A copy that never comes (lost, or
    replaced in a keep-last queue) is forgotten after `remember` newer ones.
    """

    def __init__(self, callback: Callable[[Any], None], remember: int = 8) -> None:
        self._callback = callback
        self._keys: collections.deque = collections.deque(maxlen=remember)
        self.copies_skipped = 0

    def deliver(self, msg: Any) -> None:
        """Pass on a message handed over in process; its DDS copy will be skipped."""
        self._keys.append(header_key(msg.header))
        self._callback(msg)

    def taken(self, msg: Any) -> None:
        """Pass on a message taken from DDS unless it was handed over already."""
        if not self.is_copy(msg.header):
            self._callback(msg)

    def is_copy(self, header: Any) -> bool:
        """Whether a message taken from DDS was already delivered directly (once each)."""
        key = header_key(header)
        if key not in self._keys:
            return False
        self._keys.remove(key)
        self.copies_skipped += 1
        return True
