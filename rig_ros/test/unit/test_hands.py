"""HandBox and HandTrack: which frames were taken with the hand where the goals put it."""

import numpy as np
import pytest

from rig_ros.core.hands import HandBox, HandTrack


def test_a_box_holds_hands_on_its_edges_not_unknown_ones():
    box = HandBox(low=(-0.05, 0.55), high=(0.05, 0.65))
    hands = np.array([[0.0, 0.6, 0.2], [0.05, 0.55, 0.0], [0.06, 0.6, 0.2],
                      [0.0, 0.5, 0.2], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(box.inside(hands), [True, True, False, False, False])
    assert box.contains((0.0, 0.6)) and not box.contains((0.0, 0.7, 0.1))


def test_hand_track_pairs_a_frame_with_the_nearest_hand_in_time():
    track = HandTrack(size=3)
    assert track.at(1.0, 0.05) is None
    for stamp in (1.0, 1.1, 1.2, 1.3):  # the oldest falls out
        track.add(stamp, (stamp, 0.6, 0.2))
    track.add(1.4, (float('nan'), 0.6, 0.2))  # dropped
    assert track.at(1.12, 0.05)[0] == pytest.approx(1.1)
    assert track.at(1.0, 0.05) is None and track.at(1.36, 0.05) is None
    assert track.at(1.36, 0.1)[0] == pytest.approx(1.3)


@pytest.mark.parametrize('values, match', [
    ({'low': (0.1, 0.5), 'high': (0.0, 0.7)}, 'below high'),
    ({'low': (0.0, 0.5), 'high': (0.1, float('inf'))}, 'below high'),
    ({'low': (0.0,), 'high': (0.1, 0.7)}, 'below high')])
def test_a_bad_hand_box_is_refused(values, match):
    with pytest.raises(ValueError, match=match):
        HandBox(**values)
