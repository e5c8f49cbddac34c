"""The puck tracker: a colour blob's centroid, mapped to the table by a quadratic calibration."""

import numpy as np
import pytest

from rig_ros.core.pushes import calibration_states
from rig_ros.core.tracker import PuckTracker, TrackerConfig

SIZE = 48


def table_to_image(xy: np.ndarray) -> np.ndarray:
    """Return the pixel (column, row) of table (x, y) metres: a made-up oblique camera."""
    x, y = xy
    row = 8 + (y - 0.45) * 90 + 40 * (y - 0.45) ** 2
    column = SIZE / 2 + x * (80 - 40 * (y - 0.45))
    return np.array([column, row])


def frame_with_puck(xy, covered: bool = False) -> np.ndarray:
    """Brown table, a red arm stripe, and a blue disc of radius 2 px at `xy`."""
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    frame[...] = (120, 80, 50)
    frame[:, 30:34] = (200, 30, 30)
    if not covered:
        column, row = table_to_image(np.asarray(xy, dtype=float))
        rows, columns = np.mgrid[:SIZE, :SIZE]
        disc = (rows + 0.5 - row) ** 2 + (columns + 0.5 - column) ** 2 <= 4.0
        frame[disc] = (20, 40, 220)
    return frame


def test_calibrated_tracker_locates_the_puck_within_millimetres():
    places = calibration_states('pusher')[:, 2:4]
    tracker = PuckTracker()
    fit_error = tracker.calibrate(np.stack([frame_with_puck(xy) for xy in places]), places)
    assert fit_error < 0.01
    rng = np.random.default_rng(0)
    for xy in rng.uniform([-0.18, 0.52], [0.18, 0.68], (20, 2)):
        assert np.linalg.norm(tracker.locate(frame_with_puck(xy)) - xy) < 0.01


def test_a_covered_puck_is_not_located_and_bad_frames_are_refused():
    tracker = PuckTracker(TrackerConfig(min_pixels=3))
    assert tracker.image_position(frame_with_puck(None, covered=True)) is None
    with pytest.raises(RuntimeError, match='calibrate'):
        tracker.locate(frame_with_puck((0.0, 0.6)))
    with pytest.raises(ValueError, match='RGB uint8'):
        tracker.image_position(np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match='RGB uint8'):
        tracker.image_position(np.zeros((SIZE, SIZE, 3), np.float32))


def test_calibration_needs_enough_located_places_off_one_line():
    tracker = PuckTracker()
    few = np.array([[0.0, 0.6], [0.1, 0.6], [-0.1, 0.6]])
    with pytest.raises(ValueError, match='located in 3'):
        tracker.calibrate(np.stack([frame_with_puck(xy) for xy in few]), few)
    line = np.stack([np.linspace(-0.2, 0.2, 8), np.full(8, 0.6)], axis=1)
    with pytest.raises(ValueError, match='one line'):
        tracker.calibrate(np.stack([frame_with_puck(xy) for xy in line]), line)
    # Covered places are left out, not fitted.
    places = calibration_states('pusher')[:, 2:4]
    frames = [frame_with_puck(xy, covered=index < 3) for index, xy in enumerate(places)]
    assert tracker.calibrate(np.stack(frames), places) < 0.01


@pytest.mark.parametrize('field, value', [('colour', 'purple'), ('margin', 300),
                                          ('min_pixels', 0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrackerConfig(**{field: value})


def test_calibration_places_span_the_puck_goal_box_with_the_hand_away():
    states = calibration_states('pusher')
    assert states.shape == (12, 4)
    np.testing.assert_allclose(states[:, 2:].min(axis=0), [-0.2, 0.5])
    np.testing.assert_allclose(states[:, 2:].max(axis=0), [0.2, 0.7])
    assert np.linalg.norm(states[:, :2] - states[:, 2:], axis=1).min() > 0.05
    two = calibration_states('multi_pusher')
    np.testing.assert_allclose(two[:, 4:], np.tile([0.1, 0.6], (12, 1)))
    with pytest.raises(ValueError, match='no puck'):
        calibration_states('reacher')
