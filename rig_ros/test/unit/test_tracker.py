"""The puck tracker: a colour blob's centroid, mapped to the table by a quadratic calibration."""

from factories import puck_frame
import numpy as np
import pytest

from rig_ros.core.pushes import calibration_states
from rig_ros.core.tracker import PuckTracker, TrackerConfig


def test_calibrated_tracker_locates_the_puck_within_millimetres():
    places = calibration_states('pusher')[:, 2:4]
    tracker = PuckTracker()
    fit_error = tracker.calibrate(np.stack([puck_frame(xy) for xy in places]), places)
    assert fit_error < 0.01
    rng = np.random.default_rng(0)
    for xy in rng.uniform([-0.18, 0.52], [0.18, 0.68], (20, 2)):
        assert np.linalg.norm(tracker.locate(puck_frame(xy)) - xy) < 0.01


def test_a_covered_puck_is_not_located_and_bad_frames_are_refused():
    tracker = PuckTracker(TrackerConfig(min_pixels=3))
    assert tracker.image_position(puck_frame(None)) is None
    with pytest.raises(RuntimeError, match='calibrate'):
        tracker.locate(puck_frame((0.0, 0.6)))
    with pytest.raises(ValueError, match='RGB uint8'):
        tracker.image_position(np.zeros((48, 48), np.uint8))
    with pytest.raises(ValueError, match='RGB uint8'):
        tracker.image_position(np.zeros((48, 48, 3), np.float32))


def test_calibration_needs_enough_located_places_off_one_line():
    tracker = PuckTracker()
    few = np.array([[0.0, 0.6], [0.1, 0.6], [-0.1, 0.6]])
    with pytest.raises(ValueError, match='located in 3'):
        tracker.calibrate(np.stack([puck_frame(xy) for xy in few]), few)
    line = np.stack([np.linspace(-0.2, 0.2, 8), np.full(8, 0.6)], axis=1)
    with pytest.raises(ValueError, match='one line'):
        tracker.calibrate(np.stack([puck_frame(xy) for xy in line]), line)
    # Covered places are left out, not fitted.
    places = calibration_states('pusher')[:, 2:4]
    frames = [puck_frame(None if index < 3 else xy) for index, xy in enumerate(places)]
    assert tracker.calibrate(np.stack(frames), places) < 0.01


@pytest.mark.parametrize('field, value', [('colour', 'purple'), ('margin', 300),
                                          ('min_pixels', 0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrackerConfig(**{field: value})


def test_a_saved_calibration_loads_and_a_corrupt_one_is_refused_by_name(tmp_path):
    places = calibration_states('pusher')[:, 2:4]
    tracker = PuckTracker()
    error = tracker.calibrate(np.stack([puck_frame(xy) for xy in places]), places)
    path = tmp_path / 'tracker.json'
    tracker.save(path, error)
    loaded = PuckTracker.load(path)
    np.testing.assert_allclose(loaded.weights, tracker.weights)
    assert loaded.config == tracker.config
    with pytest.raises(RuntimeError, match='calibrate'):
        PuckTracker().save(tmp_path / 'none.json', 0.0)
    for text in ('{not json', '{"format": "other"}', path.read_text().replace('"margin"', '"m"'),
                 path.read_text().replace('"weights": [', '"weights": [[1, 2], ')):
        (tmp_path / 'bad.json').write_text(text)
        with pytest.raises(ValueError, match='bad.json is not a puck tracker calibration'):
            PuckTracker.load(tmp_path / 'bad.json')
    with pytest.raises(ValueError, match='missing.json'):
        PuckTracker.load(tmp_path / 'missing.json')


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
