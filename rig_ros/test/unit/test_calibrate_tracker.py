"""`rig calibrate-tracker`: the puck tracker's calibration from the simulator or from photos."""

import json

import cv2
from factories import puck_frame
import numpy as np

from rig_ros.core.preprocessing import preprocess, PreprocessConfig
from rig_ros.core.pushes import calibration_states
from rig_ros.core.tracker import PuckTracker
from rig_ros.run.operator_tools import calibrate_tracker, EXIT_BAD_INPUT
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig


def test_the_simulators_calibration_locates_the_puck_in_the_policys_frames(tmp_path, capsys):
    out = tmp_path / 'tracker.json'
    assert calibrate_tracker(str(out)) == 0
    assert 'calibrated on 12 frames' in capsys.readouterr().out
    tracker = PuckTracker.load(out)
    rng = np.random.default_rng(0)
    with SawyerSim(SawyerSimConfig(task='pusher')) as sim:
        for puck in rng.uniform([-0.18, 0.52], [0.18, 0.68], (5, 2)):
            sim.set_state_vector(np.concatenate([[0.25, 0.45], puck]))  # the arm aside
            # The policy's frames: camera_pipeline's, resized to the VAE's 48x48.
            frame = preprocess(sim.render(84, 84), PreprocessConfig(size=48))
            assert np.linalg.norm(tracker.locate(frame) - puck) < 0.01


def test_a_robots_calibration_from_photos_and_their_places(tmp_path, capsys):
    places = calibration_states('pusher')[:, 2:4]
    photos = tmp_path / 'photos'
    photos.mkdir()
    for index, xy in enumerate(places):
        # A camera's file: 120x160, BGR as image files are read.
        frame = cv2.resize(puck_frame(xy, 96), (160, 120), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(photos / f'place_{index:02d}.png'), frame[..., ::-1])
    (tmp_path / 'places.json').write_text(json.dumps(places.tolist()))
    out = tmp_path / 'tracker.json'
    assert calibrate_tracker(str(out), frames_dir=str(photos),
                             places=str(tmp_path / 'places.json')) == 0
    tracker = PuckTracker.load(out)
    assert np.linalg.norm(tracker.locate(puck_frame(np.array([0.05, 0.62]), 48))
                          - [0.05, 0.62]) < 0.01
    (tmp_path / 'short.json').write_text(json.dumps(places[:5].tolist()))
    assert calibrate_tracker(str(tmp_path / 'x.json'), frames_dir=str(photos),
                             places=str(tmp_path / 'short.json')) == EXIT_BAD_INPUT
    assert 'one [x, y] per file' in capsys.readouterr().err
    assert calibrate_tracker(str(tmp_path / 'x.json'), frames_dir=str(photos)) == EXIT_BAD_INPUT
    assert 'give both --frames and --places' in capsys.readouterr().err
    assert not (tmp_path / 'x.json').exists()
