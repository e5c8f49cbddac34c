"""Missed messages, MessageInfo callbacks for any executor, in-process copies (no ROS)."""

import inspect
from types import SimpleNamespace

import pytest

from rig_ros.edge.sequences import HandedOver, header_key, SequenceGaps, with_message_info


def header(sec: int, nanosec: int = 0, frame_id: str = 'camera') -> SimpleNamespace:
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id=frame_id)


def test_gaps_are_counted_per_publisher():
    gaps = SequenceGaps()
    first, second = {'data': b'\x01' * 16}, b'\x02' * 16
    assert gaps.note(first, 1) == 0
    assert gaps.note(first, 5) == 3
    assert gaps.note(second, 7) == 0  # another publisher: its own numbers
    assert gaps.note(first, 6) == 0
    assert gaps.note(first, 6) == 0  # a repeat or an older number is no gap
    assert gaps.note(None, None) == 0
    assert gaps.missed == 3


def test_only_the_most_recent_publishers_are_followed():
    gaps = SequenceGaps(max_publishers=2)
    for gid in (b'a', b'b', b'c'):  # 'a' is forgotten when 'c' arrives
        gaps.note(gid, 1)
    assert gaps.note(b'a', 10) == 0  # seen as new: no gap counted
    assert gaps.note(b'c', 3) == 1
    assert gaps.missed == 1


def test_message_info_callback_takes_both_calling_conventions():
    calls = []
    callback = with_message_info(lambda msg, info: calls.append((msg, info)))
    # rclpy picks the kind of callback as Subscription.callback does: two parameters.
    with pytest.raises(TypeError):
        inspect.signature(callback).bind(object())
    inspect.signature(callback).bind(object(), object())
    callback('msg', {'publication_sequence_number': 1})  # SingleThreadedExecutor
    callback(('msg', {'publication_sequence_number': 2}))  # rclpy 9's EventsExecutor
    assert calls == [('msg', {'publication_sequence_number': 1}),
                     ('msg', {'publication_sequence_number': 2})]


def message(sec: int, frame_id: str = 'camera') -> SimpleNamespace:
    return SimpleNamespace(header=header(sec, frame_id=frame_id))


def key(msg: SimpleNamespace) -> tuple:
    return header_key(msg.header)


def test_handed_over_messages_are_skipped_once_from_dds():
    passed = []
    handed = HandedOver(passed.append, remember=2)
    handed.deliver(message(1))
    handed.taken(message(1, frame_id='other'))  # another frame: not a copy
    handed.taken(message(2))  # another publisher's message
    handed.taken(message(1))
    handed.taken(message(1))  # a second copy is a new message: passed on
    assert [key(m) for m in passed] == [
        (1, 0, 'camera'), (1, 0, 'other'), (2, 0, 'camera'), (1, 0, 'camera')]
    passed.clear()
    for sec in (3, 4, 5):  # copy of 3 never came: forgotten after two newer ones
        handed.deliver(message(sec))
    for sec in (3, 5, 4):
        handed.taken(message(sec))
    assert [key(m) for m in passed] == [
        (3, 0, 'camera'), (4, 0, 'camera'), (5, 0, 'camera'), (3, 0, 'camera')]
    assert handed.copies_skipped == 3
    assert header_key(header(7, 9, 'x')) == (7, 9, 'x')
