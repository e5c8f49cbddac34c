"""Tests of the goal scheduler's state machine: practice episodes, timeouts, image goals."""

import numpy as np
import pytest

from rig_ros.core.goals import GoalScheduler, GoalSchedulerConfig, Phase


def test_practice_episodes_alternate_resets_and_imagined_goals():
    scheduler = GoalScheduler(GoalSchedulerConfig(episode_length=20, seed=3))
    assert scheduler.phase is Phase.WAITING and not scheduler.reset_due
    assert scheduler.reset_done(4, 0.0) is None  # no reset was due
    scheduler.model_ready()
    assert scheduler.reset_due
    first = scheduler.reset_done(4, 1.0)
    assert (first.episode_id, first.episode_length, first.source, first.explore) == (
        1, 20, 'prior', True)
    assert first.mean.shape == (4,) and first.mean.dtype == np.float32
    assert scheduler.phase is Phase.RUNNING and not scheduler.reset_due
    assert not scheduler.episode_end(0) and not scheduler.episode_end(2)
    assert scheduler.episode_end(1) and scheduler.reset_due
    assert not scheduler.episode_end(1)  # a duplicate end changes nothing
    second = scheduler.reset_done(4, 2.0)
    assert second.episode_id == 2 and not np.allclose(second.mean, first.mean)
    # Seeded: the same seed imagines the same goals.
    again = GoalScheduler(GoalSchedulerConfig(episode_length=20, seed=3))
    again.model_ready()
    np.testing.assert_array_equal(again.reset_done(4, 0.0).mean, first.mean)


def test_episode_timeout():
    scheduler = GoalScheduler(GoalSchedulerConfig(episode_timeout_s=5.0))
    scheduler.model_ready()
    scheduler.reset_done(4, 10.0)
    assert not scheduler.timed_out(14.9)
    assert scheduler.timed_out(15.0) and scheduler.reset_due
    assert not scheduler.timed_out(100.0)  # not running any more
    never = GoalScheduler(GoalSchedulerConfig(episode_timeout_s=0.0))
    never.model_ready()
    never.reset_done(4, 0.0)
    assert not never.timed_out(1e9)


def test_image_goal_switches_to_reaching_for_good():
    scheduler = GoalScheduler(GoalSchedulerConfig())
    scheduler.model_ready()
    scheduler.reset_done(4, 0.0)
    goal = scheduler.image_goal([0.5, -1.0, 0.0, 2.0])
    assert (goal.episode_id, goal.episode_length, goal.source, goal.explore) == (
        2, GoalSchedulerConfig().episode_length, 'image', False)
    assert scheduler.phase is Phase.REACHING
    assert not scheduler.episode_end(2) and not scheduler.timed_out(1e9)
    assert scheduler.reset_done(4, 1.0) is None  # a reset answered late starts nothing
    assert scheduler.image_goal(np.zeros(4)).episode_id == 3
    reach = GoalScheduler(GoalSchedulerConfig(goal_source='image'))
    reach.model_ready()
    assert reach.phase is Phase.REACHING and not reach.reset_due


@pytest.mark.parametrize('field, value, problem', [
    ('goal_source', 'dream', 'goal_source'), ('episode_length', 0, 'episode_length'),
    ('reset_timeout_s', 0.0, 'reset_timeout_s'), ('episode_timeout_s', -1.0, 'episode_timeout_s'),
    ('seed', -1, 'seed'), ('encode_timeout_s', float('nan'), 'encode_timeout_s')])
def test_config_rejects_bad_values(field, value, problem):
    with pytest.raises(ValueError, match=problem):
        GoalSchedulerConfig(**{field: value})
