"""The sim's scene rendered at measured joint angles (`rig_ros.sim.joint_camera`)."""

import math
import pathlib

import numpy as np
import pytest
import yaml

from rig_ros import tasks
from rig_ros.core.preprocessing import CropBox, preprocess, PreprocessConfig
from rig_ros.robot.kinematics import JOINT_LOWER, JOINT_UPPER, SawyerKinematics
from rig_ros.sim.joint_camera import JointCamera, JointCameraConfig
from rig_ros.sim.sawyer import SawyerSim

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / 'config'
# config/sawyer_reacher.yaml's reset pose: the tool at (0.6, 0.0, 0.12) m, pointing down.
RESET = np.array([-0.297, -1.0206, 0.0393, 1.7965, -0.0288, 0.7954, 3.0729])


@pytest.fixture(scope='module')
def camera():
    """Share one camera: building the sim and its GL context costs more than the tests."""
    with JointCamera() as joint_camera:
        yield joint_camera


def pipeline(frame: np.ndarray) -> np.ndarray:
    """camera_pipeline's default image of a frame (the task's crop, 84x84)."""
    view = JointCameraConfig().view
    return preprocess(frame, PreprocessConfig(crop=CropBox.from_fractions(*view), size=84))


def test_the_hand_is_where_forward_kinematics_puts_it(camera):
    kinematics = SawyerKinematics()
    rng = np.random.default_rng(4)
    poses = [RESET] + list(rng.uniform(JOINT_LOWER * 0.9, JOINT_UPPER * 0.9, size=(20, 7)))
    for q in poses:
        camera.set_joints(q)
        np.testing.assert_allclose(camera.hand_position(), kinematics.forward(q).position,
                                   atol=1e-6)
        np.testing.assert_allclose(camera.joints, q)
    # The base frame turned by 90 degrees: the reset tool point lies on the sim's table, in
    # the middle of the reacher's box (x +-0.2, y 0.55-0.75 m).
    camera.set_joints(RESET)
    world = camera.base_to_world(camera.hand_position())
    np.testing.assert_allclose(world, (0.0, 0.6, 0.12), atol=1e-3)
    np.testing.assert_allclose(camera.sim.data.body('hand').xpos, world, atol=1e-9)


def test_frames_move_with_the_arm(camera):
    kinematics = SawyerKinematics()
    frame = camera.render(RESET)
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert not frame.flags.writeable
    assert camera.render(RESET) is frame  # an arm standing still: the same frame, no render
    # Turning right_j0 by 0.1 rad swings the tool ~6 cm sideways: the image changes where the
    # hand was and where it went, and the rest of the scene stays as it was.
    turned = RESET + np.r_[0.1, np.zeros(6)]
    assert np.linalg.norm(kinematics.forward(turned).position
                          - kinematics.forward(RESET).position) > 0.05
    other = camera.render(turned)
    before, after = pipeline(frame).astype(int), pipeline(other).astype(int)
    changed = np.abs(after - before).max(axis=2) > 40
    assert 0.01 < changed.mean() < 0.3, changed.mean()


def test_the_pipelines_image_is_the_sims_frame(camera):
    """At the sim's own arm pose, the task crop of the frame is the sim's 84x84 frame."""
    with SawyerSim() as sim:
        q = np.array([sim.data.joint(f'right_j{i}').qpos[0] for i in range(7)])
        q[0] -= math.radians(camera.config.base_yaw_deg)  # the sim's arm, in the base frame
        expected = sim.render().astype(int)
        hand = sim.ground_truth()['hand_xyz']
    image = pipeline(camera.render(q)).astype(int)
    np.testing.assert_allclose(camera.base_to_world(camera.hand_position()), hand, atol=1e-9)
    difference = np.abs(image - expected)
    assert difference.mean() < 4.0 and np.percentile(difference, 99) < 80, (
        difference.mean(), np.percentile(difference, 99))


def test_the_default_view_is_the_robot_configs_crop():
    """The frame's view box is camera_pipeline's crop in every task's real-robot file."""
    for name in tasks.TASK_NAMES:
        robot_file = CONFIG_DIR / f'{tasks.task(name).robot_config}.yaml'
        crop = yaml.safe_load(robot_file.read_text())['/**/camera_pipeline'][
            'ros__parameters']['crop']
        assert crop['fractional'] is True
        assert tuple(crop[key] for key in ('top', 'left', 'height', 'width')) == (
            JointCameraConfig().view), robot_file


def test_bad_joints_and_settings_are_refused(camera):
    camera.set_joints(RESET)
    for bad in ([0.0] * 6, [math.nan] + [0.0] * 6, [0.0] * 6 + [math.inf]):
        with pytest.raises(ValueError, match='7 finite angles'):
            camera.set_joints(bad)
    np.testing.assert_allclose(camera.joints, RESET)  # kept
    for settings in ({'image_height': 0}, {'view': (0.6, 0.0, 0.5, 1.0)},
                     {'base_yaw_deg': math.nan}, {'task': 'sweeper'}):
        with pytest.raises(ValueError):
            JointCameraConfig(**settings)
    with JointCamera() as fresh, pytest.raises(ValueError, match='set_joints first'):
        fresh.render()
