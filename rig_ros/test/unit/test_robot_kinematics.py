"""Sawyer kinematics and damped least squares: against finite differences and MuJoCo's model."""

import numpy as np
import pytest

from rig_ros.robot.control import (
    ControllerConfig, dls_joint_velocities, EEVelocityController, limit_joint_velocities)
from rig_ros.robot.kinematics import (
    JOINT_LOWER, JOINT_UPPER, JOINT_VELOCITY_LIMITS, matrix_to_quaternion, quaternion_to_matrix,
    rotation_error, SawyerKinematics)

RNG_SEED = 3


def random_angles(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(JOINT_LOWER * 0.9, JOINT_UPPER * 0.9, size=(n, 7))


def test_forward_kinematics_match_the_sims_mjcf():
    """The typed-in chain is metaworld's Sawyer: same hand and right_hand poses as MuJoCo."""
    mujoco = pytest.importorskip('mujoco')
    from rig_ros.sim import scene

    model = mujoco.MjModel.from_xml_string(scene.sawyer_scene_xml(0, 0.025))
    data = mujoco.MjData(model)
    kinematics = SawyerKinematics()
    rng = np.random.default_rng(RNG_SEED)
    low = model.jnt_range[:7, 0]
    high = model.jnt_range[:7, 1]
    for q in rng.uniform(low, high, size=(50, 7)):
        data.qpos[:7] = q
        mujoco.mj_kinematics(model, data)
        tool = kinematics.forward(q)
        hand = kinematics.right_hand_pose(q)
        np.testing.assert_allclose(tool.position, data.body('hand').xpos, atol=1e-9)
        np.testing.assert_allclose(hand.position, data.body('right_hand').xpos, atol=1e-9)
        np.testing.assert_allclose(hand.rotation, data.body('right_hand').xmat.reshape(3, 3),
                                   atol=1e-9)


def test_jacobian_matches_finite_differences():
    kinematics = SawyerKinematics()
    rng = np.random.default_rng(RNG_SEED)
    step = 1e-6
    for q in random_angles(rng, 200):
        jacobian = kinematics.jacobian(q)
        pose = kinematics.forward(q)
        for joint in range(7):
            dq = np.zeros(7)
            dq[joint] = step
            plus, minus = kinematics.forward(q + dq), kinematics.forward(q - dq)
            linear = (plus.position - minus.position) / (2 * step)
            angular = rotation_error(plus.rotation, minus.rotation) / (2 * step)
            np.testing.assert_allclose(jacobian[:3, joint], linear, atol=1e-6)
            np.testing.assert_allclose(jacobian[3:, joint], angular, atol=1e-6)
        assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(pose.rotation)),
                           pose.rotation, atol=1e-9)


def test_rotation_error_is_the_rotation_vector():
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(100):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(0.0, 3.1)
        base = quaternion_to_matrix(rng.normal(size=4))
        w, x, y, z = np.cos(angle / 2), *(np.sin(angle / 2) * axis)
        turned = quaternion_to_matrix((w, x, y, z)) @ base
        np.testing.assert_allclose(rotation_error(turned, base), axis * angle, atol=1e-7)


def test_dls_tracks_the_commanded_direction_away_from_singularities():
    kinematics = SawyerKinematics()
    rng = np.random.default_rng(RNG_SEED)
    checked = 0
    for q in random_angles(rng, 300):
        jacobian = kinematics.jacobian(q)
        if np.linalg.svd(jacobian, compute_uv=False)[-1] < 0.05:
            continue
        twist = np.r_[rng.normal(size=3) * 0.1, 0.0, 0.0, 0.0]
        achieved = jacobian @ dls_joint_velocities(jacobian, twist)
        np.testing.assert_allclose(achieved, twist, atol=1e-9)
        checked += 1
    assert checked > 100


def test_dls_damping_grows_near_a_singularity_and_stays_bounded():
    kinematics = SawyerKinematics()
    # Elbow straight (right_j3 = 0) and wrist aligned: a singular arm.
    q = np.array([0.0, -1.57, 0.0, 0.0, 0.0, 0.0, 0.0])
    jacobian = kinematics.jacobian(q)
    assert np.linalg.svd(jacobian, compute_uv=False)[-1] < 1e-6
    twist = np.array([0.1, 0.1, 0.1, 0.0, 0.0, 0.0])
    qdot = dls_joint_velocities(jacobian, twist)
    assert np.all(np.isfinite(qdot))
    assert np.linalg.norm(qdot) < 100.0
    achieved = jacobian @ qdot
    assert achieved @ twist > 0.0  # still no motion against the command


def test_joint_velocity_limits_scale_the_whole_vector():
    q = np.zeros(7)
    qdot = JOINT_VELOCITY_LIMITS * np.array([3.0, 0.5, -0.2, 1.0, 0.1, 0.0, -2.0])
    limited = limit_joint_velocities(qdot, q)
    assert np.all(np.abs(limited) <= JOINT_VELOCITY_LIMITS + 1e-12)
    assert np.isclose(limited @ qdot / np.linalg.norm(limited) / np.linalg.norm(qdot), 1.0)
    # Against a position limit: nothing moves that way.
    at_limit = JOINT_UPPER - 0.01
    assert not np.any(limit_joint_velocities(np.ones(7) * 0.1, at_limit))
    assert np.any(limit_joint_velocities(-np.ones(7) * 0.1, at_limit))
    assert not np.any(limit_joint_velocities(np.full(7, np.nan), q))


def test_controller_tracks_planar_commands_and_holds_height():
    kinematics = SawyerKinematics()
    controller = EEVelocityController(kinematics, ControllerConfig())
    q = np.array([-0.297, -1.0206, 0.0393, 1.7965, -0.0288, 0.7954, 3.0729])
    hold = kinematics.forward(q)
    dt = 0.01
    for command in ([0.1, 0.0, 0.0], [0.0, -0.1, 0.0], [-0.07, 0.07, 0.0]):
        start = kinematics.forward(q).position
        for _ in range(50):
            pose = kinematics.forward(q)
            twist = controller.twist(np.array(command), pose, hold, planar=True)
            q = q + controller.joint_velocities(q, twist, pose) * dt
        moved = kinematics.forward(q).position - start
        velocity = moved / (50 * dt)
        cosine = velocity @ command / np.linalg.norm(velocity) / np.linalg.norm(command)
        assert cosine > 0.999
        assert abs(np.linalg.norm(velocity) / np.linalg.norm(command) - 1.0) < 0.02
        assert abs(kinematics.forward(q).position[2] - hold.position[2]) < 1e-3
        assert np.linalg.norm(rotation_error(hold.rotation, kinematics.forward(q).rotation)) < 0.01
