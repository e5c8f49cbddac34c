"""Missed messages counted from publishers' sequence numbers (no ROS)."""

from rig_ros.edge.sequences import SequenceGaps


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
