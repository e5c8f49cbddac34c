"""Aimed pushes: behind the puck, then through it towards a point of the puck-goal box."""

import numpy as np
import pytest

from rig_ros import tasks
from rig_ros.core.pushes import aimed_push, APPROACH_M, PUSH_BEHIND_M, PUSH_SHORT_M

PUSHER = tasks.task('pusher')


def test_a_push_lines_up_behind_the_puck_and_stops_short_of_a_destination_in_the_box():
    rng = np.random.default_rng(0)
    state = np.array([0.0, 0.5, 0.1, 0.6])
    for _ in range(50):
        push = aimed_push(state, 'pusher', rng)
        puck = state[2:]
        behind, through = push.behind - puck, push.through - puck
        assert np.linalg.norm(behind) == pytest.approx(PUSH_BEHIND_M)
        # Behind and through lie on opposite sides of the puck, on one line.
        cosine = behind @ through / (np.linalg.norm(behind) * np.linalg.norm(through) + 1e-12)
        assert cosine == pytest.approx(-1.0, abs=1e-6) or np.linalg.norm(through) < 1e-9
        destination = puck + through / (np.linalg.norm(through) + 1e-12) * (
            np.linalg.norm(through) + PUSH_SHORT_M)
        assert np.all(destination >= np.array(PUSHER.puck_goal_low) - 1e-9)
        assert np.all(destination <= np.array(PUSHER.puck_goal_high) + 1e-9)


def test_the_action_approaches_then_pushes_and_slows_near_its_waypoint():
    push = aimed_push(np.array([0.0, 0.5, 0.0, 0.6]), 'pusher', np.random.default_rng(1))
    far = np.array([-0.25, 0.8])
    approach = push.action(far, 0.0)
    assert np.all(np.abs(approach) <= 1.0) and np.abs(approach).max() == 1.0
    assert np.sign(approach) @ np.sign(push.behind - far) == 2  # towards `behind`
    np.testing.assert_allclose(push.action(push.behind, 0.2), 0.0)
    pushing = push.action(push.behind, 0.5)
    assert np.sign(pushing) @ np.sign(push.through - push.behind) >= 1  # now towards `through`
    close = push.through - np.array([APPROACH_M / 4, 0.0])
    assert np.abs(push.action(close, 0.9)).max() == pytest.approx(0.25)


def test_one_of_several_pucks_and_nothing_without_pucks():
    rng = np.random.default_rng(2)
    state = np.array([0.0, 0.5, -0.1, 0.6, 0.1, 0.6])
    aimed = {int(aimed_push(state, 'multi_pusher', rng).behind[0] > 0) for _ in range(40)}
    assert aimed == {0, 1}
    assert aimed_push(np.array([0.0, 0.6]), 'reacher', rng) is None
