"""Re-sets besides the start: kept objects, the hand moved into its goal box (no ROS)."""

import numpy as np

from rig_ros.core.resets import (
    HAND_BOX_CLEARANCE_M, hand_in_goal_box, hand_to_goal_box, kept_objects)


def test_kept_objects_stay_unless_out_of_reach_or_under_the_hand():
    reset = np.array([0.0, 0.5, 0.0, 0.6])  # the pusher's hand and puck after a reset
    assert np.allclose(kept_objects(reset, [0.15, 0.72], 'pusher'), [0.0, 0.5, 0.15, 0.72])
    assert np.allclose(kept_objects(reset, [0.4, 0.6], 'pusher'), reset)  # off the workspace
    assert np.allclose(kept_objects(reset, [0.02, 0.52], 'pusher'), reset)  # under the hand
    two = np.array([0.0, 0.5, -0.1, 0.6, 0.1, 0.6])
    assert np.allclose(kept_objects(two, [-0.2, 0.7, 0.3, 0.9], 'multi_pusher'),
                       [0.0, 0.5, -0.2, 0.7, 0.1, 0.6])


def test_hand_to_goal_box_places_the_hand_in_the_box_clear_of_the_pucks():
    rng = np.random.default_rng(0)
    for puck in ([0.0, 0.6], [0.04, 0.56], [0.2, 0.7]):
        state = hand_to_goal_box(np.array([0.0, 0.5, *puck]), 'pusher', rng)
        assert hand_in_goal_box(state[None], 'pusher')[0]
        assert np.linalg.norm(state[:2] - puck) >= HAND_BOX_CLEARANCE_M
        np.testing.assert_array_equal(state[2:], puck)  # the puck stays
    # Two pucks filling the box leave no room: the hand stays where it was.
    crowded = np.array([0.0, 0.5, -0.03, 0.6, 0.03, 0.6])
    np.testing.assert_array_equal(hand_to_goal_box(crowded, 'multi_pusher', rng), crowded)
    # The reacher has no hand-goal box.
    np.testing.assert_array_equal(hand_to_goal_box(np.array([0.0, 0.6]), 'reacher', rng),
                                  [0.0, 0.6])


def test_hand_in_goal_box_reads_the_tasks_hand_goal_box():
    states = np.array([[0.0, 0.6, 0.1, 0.6], [0.05, 0.55, 0.0, 0.6], [0.1, 0.6, 0.0, 0.6],
                       [0.0, 0.7, 0.0, 0.6]])
    np.testing.assert_array_equal(hand_in_goal_box(states, 'pusher'),
                                  [True, True, False, False])
    # The reacher's goals span the reachable space: every hand counts.
    assert hand_in_goal_box(states[:, :2], 'reacher').all()
