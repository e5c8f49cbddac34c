"""Tests of the simulated Sawyer: velocity control, workspace box, goals, images, seeding."""

import numpy as np
import pytest

from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig


@pytest.fixture(scope='module')
def reacher():
    """Share one reacher: building and rendering contexts cost more than the tests."""
    with SawyerSim(SawyerSimConfig(task='reacher')) as sim:
        yield sim


@pytest.fixture(scope='module')
def pusher():
    """Share one pusher."""
    with SawyerSim(SawyerSimConfig(task='pusher')) as sim:
        yield sim


def _drive_to(sim, hand_xy, steps=40):
    """Drive the hand to `hand_xy` with a proportional velocity command, then hold still."""
    for _ in range(steps):
        sim.step_velocity(np.clip((hand_xy - sim.state_vector()[:2]) / 0.1, -0.2, 0.2))
    for _ in range(3):
        sim.step_velocity(np.zeros(2))


def test_velocity_command_moves_hand_by_v_times_t(reacher):
    reacher.reset()
    start = reacher.ground_truth()['hand_xyz']
    for _ in range(10):  # 1 s at 10 Hz
        reacher.step_velocity(np.array([0.1, 0.0]))
    moved = reacher.ground_truth()['hand_xyz'] - start
    # The welded hand trails its target by a few millimetres; 1 cm covers that lag.
    assert moved[0] == pytest.approx(0.1, abs=0.01)
    assert abs(moved[1]) < 0.002 and abs(moved[2]) < 0.002


def test_speed_is_clipped_per_axis(reacher):
    reacher.reset()
    target = reacher.data.mocap_pos[0].copy()
    reacher.step_velocity(np.array([5.0, -0.05]))
    step = reacher.data.mocap_pos[0] - target
    period = reacher.config.control_period_s
    np.testing.assert_allclose(step[:2], [0.2 * period, -0.05 * period], atol=1e-9)
    assert step[2] == 0.0

    reacher.reset()
    reacher.step(np.array([3.0, 1.0]))  # normalised actions saturate at 1 = max speed
    saturated = reacher.state_vector()
    reacher.reset()
    reacher.step_velocity(np.array([0.2, 0.2]))
    np.testing.assert_array_equal(reacher.state_vector(), saturated)


@pytest.mark.parametrize('direction', [(1, 1), (-1, -1), (1, -1), (-1, 1)])
def test_workspace_box_is_enforced(pusher, direction):
    pusher.reset()
    low = np.array(pusher.config.workspace_low)
    high = np.array(pusher.config.workspace_high)
    for _ in range(25):  # 0.5 m of travel: well past every wall of the box
        pusher.step(np.array(direction, dtype=float))
        target = pusher.data.mocap_pos[0, :2]
        assert np.all(target >= low) and np.all(target <= high)
        hand = pusher.state_vector()[:2]
        assert np.all(hand >= low - 0.005) and np.all(hand <= high + 0.005)
    corner = np.where(np.array(direction) > 0, high, low)
    np.testing.assert_allclose(pusher.state_vector()[:2], corner, atol=0.006)


@pytest.mark.parametrize('command', [[np.nan, 0.0], [0.0, np.inf], [0.1], [0.1, 0.1, 0.1]])
def test_invalid_commands_are_rejected(reacher, command):
    with pytest.raises(ValueError):
        reacher.step(np.array(command))
    with pytest.raises(ValueError):
        reacher.step_velocity(np.array(command))


@pytest.mark.parametrize('field, value', [
    ('task', 'door'),
    ('control_period_s', 0.0),
    ('max_speed_m_s', -0.1),
    ('hand_z_m', 0.01),
    ('workspace_low', (0.3, 0.5)),
    ('workspace_high', (0.1, float('nan'))),
    ('image_height', 0),
    ('image_width', 8.5),
    ('camera_distance_m', 0.0),
    ('camera_elevation_deg', -120.0),
    ('camera_fovy_deg', 0.0),
    ('puck_radius_m', 0.0),
    ('seed', -1),
    ('settle_steps', 0),
])
def test_bad_config_is_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SawyerSimConfig(**{field: value})


def test_control_period_must_be_whole_physics_steps():
    with pytest.raises(ValueError, match='control_period_s'):
        SawyerSim(SawyerSimConfig(control_period_s=0.101))


def test_reset_is_settled(pusher):
    pusher.step(np.array([1.0, -1.0]))
    pusher.reset()
    state = pusher.state_vector()
    np.testing.assert_allclose(state, [0.0, 0.5, 0.0, 0.6], atol=0.002)
    for _ in range(5):
        pusher.step_velocity(np.zeros(2))
    np.testing.assert_allclose(pusher.state_vector(), state, atol=5e-4)


def test_hand_pushes_the_puck(pusher):
    pusher.reset()
    for _ in range(10):  # 0.2 m toward +y; the puck sits 0.1 m ahead of the hand
        pusher.step(np.array([0.0, 1.0]))
    puck = pusher.ground_truth()['puck_xy'][0]
    assert puck[1] > 0.65 and abs(puck[0]) < 0.03


def test_same_seed_gives_identical_states_and_images():
    config = SawyerSimConfig(task='pusher', random_hand_start=True, seed=3)
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    runs = []
    for _ in range(2):
        with SawyerSim(config) as sim:
            sim.reset(seed=11)
            for action in actions:
                sim.step(action)
            runs.append((sim.state_vector(), sim.render(), sim.sample_goal_state()))
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)
    with SawyerSim(config) as sim:
        starts = []
        for seed in (11, 12, 11):
            sim.reset(seed=seed)
            starts.append(sim.state_vector())
    np.testing.assert_array_equal(starts[0], starts[2])
    assert not np.allclose(starts[0], starts[1])


def test_render_goal_matches_moving_there_and_restores_the_state(reacher):
    reacher.reset()
    reacher.step(np.array([-1.0, 0.5]))
    before_state, before_image = reacher.state_vector(), reacher.render()
    goal = reacher.sample_goal_state(np.random.default_rng(5))
    goal_image = reacher.render_goal(goal)
    np.testing.assert_array_equal(reacher.state_vector(), before_state)
    np.testing.assert_array_equal(reacher.render(), before_image)

    _drive_to(reacher, goal)
    assert reacher.distances(goal)['hand_distance'] < 0.001
    difference = np.abs(reacher.render().astype(int) - goal_image.astype(int))
    assert difference.mean() < 1.0
    assert np.mean(difference.max(axis=-1) > 40) < 0.005  # a few edge pixels at most


def test_pusher_goal_state_is_reached_and_restored(pusher):
    pusher.reset()
    goal = pusher.sample_goal_state(np.random.default_rng(2))
    before = pusher.state_vector()
    pusher.render_goal(goal, 48, 48)
    np.testing.assert_array_equal(pusher.state_vector(), before)
    pusher.set_state_vector(goal)
    np.testing.assert_allclose(pusher.state_vector(), goal, atol=0.001)
    assert pusher.distances(goal)['puck_distance'] < 0.001


@pytest.mark.parametrize('task, pucks', [('reacher', 0), ('pusher', 1), ('multi_pusher', 2)])
def test_goal_sampling_respects_boxes_and_spacing(task, pucks):
    with SawyerSim(SawyerSimConfig(task=task)) as sim:
        rng = np.random.default_rng(0)
        goals = np.array([sim.sample_goal_state(rng) for _ in range(200)])
        assert goals.shape == (200, 2 + 2 * pucks) == (200, sim.state_dim)
        assert sim.ground_truth()['puck_xy'].shape == (pucks, 2)
        hands = goals[:, :2]
        if pucks:
            assert np.all(np.abs(hands[:, 0]) <= 0.05)
            assert np.all((hands[:, 1] >= 0.55) & (hands[:, 1] <= 0.65))
            puck_xy = goals[:, 2:].reshape(200, pucks, 2)
            assert np.all(np.abs(puck_xy[..., 0]) <= 0.2)
            assert np.all((puck_xy[..., 1] >= 0.5) & (puck_xy[..., 1] <= 0.7))
            gaps = np.linalg.norm(puck_xy - hands[:, None], axis=-1)
            assert gaps.min() >= sim.config.puck_radius_m + 0.03
            assert set(sim.distances(goals[0])) == {'hand_distance', 'puck_distance'}
        else:
            assert np.all(np.abs(hands[:, 0]) <= 0.2)
            assert np.all((hands[:, 1] >= 0.55) & (hands[:, 1] <= 0.745))
            assert set(sim.distances(goals[0])) == {'hand_distance'}


@pytest.mark.parametrize('height, width', [(84, 84), (48, 48), (240, 320), (600, 800)])
def test_renders_any_size(reacher, height, width):
    image = reacher.render(height, width)
    assert image.dtype == np.uint8 and image.shape == (height, width, 3)
    assert image.std() > 10  # a scene, not a blank buffer


def test_default_image_shows_the_pucks_distinctly(pusher):
    pusher.reset()
    image = pusher.render().astype(int)
    assert image.shape == (84, 84, 3)
    blue = (image[..., 2] > 150) & (image[..., 0] < 80)  # the puck's colour, nothing else's
    assert blue.sum() >= 20  # several pixels across at 84x84


def test_puck_visibility_sees_the_arm_cover_the_puck_behind_the_hand(pusher):
    pusher.set_state_vector(np.array([0.0, 0.5, 0.0, 0.6]))  # the puck in front of the hand
    assert pusher.visible_puck_fractions() == pytest.approx([1.0])
    behind = np.array([-0.01, 0.62, -0.08, 0.51])  # a goal of the benchmark's seed 0
    pusher.set_state_vector(behind)
    assert pusher.visible_puck_fractions()[0] < 0.3  # the forearm covers it at -65 degrees
    colours = pusher.model.geom_rgba.copy()
    pusher.visible_puck_fractions()
    np.testing.assert_array_equal(pusher.model.geom_rgba, colours)  # the scene keeps its look
    with SawyerSim(SawyerSimConfig(task='pusher', camera_elevation_deg=-45.0)) as flatter:
        flatter.set_state_vector(behind)
        assert flatter.visible_puck_fractions()[0] > 0.9
        image = flatter.render()
        assert image.std() > 10  # segmentation left the renderer drawing colours again


def test_hidden_arm_shows_the_puck_and_the_fingers_and_moves_alike(pusher):
    corner = np.array([-0.2, 0.7, -0.2, 0.5])  # the elbow covers this puck
    pusher.set_state_vector(corner)
    assert pusher.visible_puck_fractions()[0] < 0.1
    with SawyerSim(SawyerSimConfig(task='pusher', hide_arm=True)) as ghost:
        ghost.set_state_vector(corner)
        assert ghost.visible_puck_fractions() == pytest.approx([1.0])
        image = ghost.render().astype(int)
        assert ((image[..., 1] > 150) & (image[..., 2] > 150) & (image[..., 0] < 80)).sum() >= 2
        assert (image[..., 0] > 2 * image[..., 2] + 60).sum() == 0  # no red link is drawn
        pusher.reset()
        ghost.reset()
        for _ in range(15):  # the same push: the links still move and collide
            pusher.step(np.array([0.0, 1.0]))
            ghost.step(np.array([0.0, 1.0]))
        np.testing.assert_allclose(ghost.state_vector(), pusher.state_vector(), atol=1e-9)


def test_goal_sampling_draws_again_when_the_pucks_leave_the_hand_no_room(monkeypatch):
    # Seen in an oracle's training: two puck goals in the hand's box, 1000 hand draws failed.
    with SawyerSim(SawyerSimConfig(task='multi_pusher')) as sim:
        place = sim._sample_separated
        failures = []

        def hand_fails_once(low, high, others, rng, **kwargs):
            if len(others) == 2 and not failures:
                failures.append(others.copy())
                raise RuntimeError('could not place a goal clear of the others')
            return place(low, high, others, rng, **kwargs)
        monkeypatch.setattr(sim, '_sample_separated', hand_fails_once)
        goal = sim.sample_goal_state(np.random.default_rng(0))
        assert len(failures) == 1 and goal.shape == (6,)
        assert not np.allclose(goal[2:].reshape(2, 2), failures[0])  # the pucks drawn again
