"""Tests of the goal scheduler's state machine: exploration, practice, timeouts, image goals."""

import numpy as np
import pytest

from rig_ros.core.goals import (
    FramePool, GoalScheduler, GoalSchedulerConfig, learner_status_summary, parse_learner_status,
    Phase)
from rig_ros.core.hands import HandBox


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


def test_frames_goals_are_latents_the_camera_gave_under_the_current_vae():
    scheduler = GoalScheduler(GoalSchedulerConfig(imagined_goals='frames', seed=1))
    scheduler.model_ready()
    first = scheduler.reset_done(4, 0.0)  # nothing seen yet: the prior
    assert first.mean.shape == (4,)
    seen = [np.full(4, value, np.float32) for value in (1.0, 2.0, 3.0)]
    for latent in seen:
        scheduler.seen_latent(latent, version=1)
    scheduler.seen_latent(np.array([np.nan, 0, 0, 0], np.float32), version=1)  # not kept
    drawn = set()
    for episode in range(2, 30):
        assert scheduler.episode_end(episode - 1)
        goal = scheduler.reset_done(4, float(episode))
        assert goal.source == 'prior' and goal.explore  # imagined, as rig_msgs/Goal says
        assert any(np.array_equal(goal.mean, latent) for latent in seen)
        drawn.add(float(goal.mean[0]))
    assert drawn == {1.0, 2.0, 3.0}
    scheduler.seen_latent(np.full(4, 9.0, np.float32), version=2)  # a new VAE: old latents go
    assert len(scheduler.frames) == 1
    assert scheduler.episode_end(29)
    np.testing.assert_array_equal(scheduler.reset_done(4, 30.0).mean, np.full(4, 9.0))
    assert scheduler.episode_end(30)  # a latent of another size (a VAE loading): the prior
    assert not np.array_equal(scheduler.reset_done(8, 31.0).mean[:4], np.full(4, 9.0))


def test_prior_goals_ignore_seen_latents():
    scheduler = GoalScheduler(GoalSchedulerConfig(seed=1))
    scheduler.seen_latent(np.full(4, 1.0, np.float32), version=1)
    assert len(scheduler.frames) == 0


def test_frame_pool_keeps_a_uniform_sample_of_its_size():
    pool = FramePool(100, np.random.default_rng(0))
    for value in range(1000):
        pool.add(np.full(2, value, np.float32), version=0)
    assert len(pool) == 100
    kept = np.array([pool.draw()[0] for _ in range(2000)])
    assert 300 < kept.mean() < 700  # not just the first or the last hundred


def test_a_skewed_pool_draws_rare_latents_more():
    pool = FramePool(100, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for index in range(100):  # one latent in ten far out (a rare scene), strung out
        far = index % 10 == 0
        pool.add(rng.normal(0.0, 0.1, 4) + (2.0 + index / 20 if far else 0.0), version=1)
    uniform = np.array([pool.draw()[0] for _ in range(1000)])
    skewed = np.array([pool.draw(-1.0, 50.0)[0] for _ in range(1000)])
    assert np.mean(uniform > 1.0) < 0.2 and np.mean(skewed > 1.0) > 0.4


def test_a_skewed_pool_refits_its_density_only_after_enough_new_frames():
    pool = FramePool(50, np.random.default_rng(0), refit_every=20)
    rng = np.random.default_rng(1)

    def offer(count: int, version: int = 1) -> None:
        for _ in range(count):
            pool.add(rng.normal(size=4), version)

    offer(60)
    for _ in range(10):  # ten episodes' goals from one fit
        pool.draw(-1.0)
    assert pool.fits == 1
    offer(19)
    pool.draw(-1.0)
    assert pool.fits == 1
    offer(1)  # the twentieth frame since the fit
    pool.draw(-1.0)
    assert pool.fits == 2
    pool.draw(-0.5)  # another skew is another density weighting
    assert pool.fits == 3
    offer(5, version=2)  # a new VAE empties the pool: its five latents are weighed afresh
    assert pool.draw(-0.5).shape == (4,) and pool.fits == 4


def test_a_skewed_scheduler_imagines_from_its_pool_by_weight():
    scheduler = GoalScheduler(GoalSchedulerConfig(imagined_goals='frames', skew_alpha=-1.0,
                                                  skew_max_weight_ratio=50.0))
    scheduler.model_ready()
    for index in range(50):
        scheduler.seen_latent(np.full(4, 5.0 if index == 0 else 0.0, np.float32), version=1)
    goals = [scheduler.imagine(4)[0] for _ in range(200)]
    assert set(goals) == {0.0, 5.0} and goals.count(5.0) > 40  # one latent in 50: 2 % uniform


@pytest.mark.parametrize('values, field', [
    ({'imagined_goals': 'frames', 'skew_alpha': 0.5}, 'skew_alpha'),
    ({'imagined_goals': 'frames', 'skew_alpha': float('nan')}, 'skew_alpha'),
    ({'skew_alpha': -1.0}, "imagined_goals 'frames'"),
    ({'imagined_goals': 'frames', 'skew_max_weight_ratio': 0.5}, 'skew_max_weight_ratio'),
    ({'imagined_goals': 'frames', 'skew_refit_every': 0}, 'skew_refit_every'),
    ({'frame_goals_hand_box': HandBox((0.0, 0.5), (0.1, 0.7))}, "imagined_goals 'frames'"),
    ({'imagined_goals': 'frames', 'hand_stamp_tolerance_s': 0.0}, 'hand_stamp_tolerance_s')])
def test_bad_skew_settings_name_the_field(values, field):
    with pytest.raises(ValueError, match=field):
        GoalSchedulerConfig(**values)


def test_hand_box_goals_keep_frames_taken_with_the_hand_inside():
    box = HandBox(low=(-0.05, 0.55), high=(0.05, 0.65))
    scheduler = GoalScheduler(GoalSchedulerConfig(imagined_goals='frames',
                                                  frame_goals_hand_box=box))
    scheduler.model_ready()
    # Hands at 1.0 s (in the box), 2.0 s (outside) and 4.0 s (on an edge); none near 3.0 s.
    for stamp, hand in ((1.0, [0.0, 0.6, 0.2]), (2.0, [0.1, 0.6, 0.2]), (4.0, [0.05, 0.55, 0.2])):
        scheduler.seen_hand(stamp, np.array(hand))
    for value in (1.0, 2.0, 3.0, 4.0):  # each frame taken 10 ms after its hand was read
        scheduler.seen_latent(np.full(4, value, np.float32), 1, stamp=value + 0.01)
    assert len(scheduler.frames) == 2
    assert scheduler.frames_left_out == {'no hand': 1, 'hand outside the box': 1}
    assert {scheduler.imagine(4)[0] for _ in range(50)} == {1.0, 4.0}
    assert scheduler.frame_pool_summary() == (
        '2 frames with the hand in the box kept for goals, left out: 1 no hand, '
        '1 hand outside the box')
    assert GoalScheduler(GoalSchedulerConfig()).frame_pool_summary() == ''


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


def test_exploration_while_the_learner_explores_then_wait_then_practice():
    scheduler = GoalScheduler(GoalSchedulerConfig(episode_length=7, seed=3))
    assert scheduler.phase is Phase.WAITING and not scheduler.may_explore
    scheduler.set_learner_stage('explore')
    assert scheduler.reset_due and scheduler.may_explore
    first = scheduler.reset_done(0, 1.0)
    assert (first.episode_id, first.episode_length, first.source, first.explore) == (
        1, 7, 'explore', True)
    assert first.mean.shape == (0,) and scheduler.exploring
    assert scheduler.phase is Phase.RUNNING
    assert scheduler.episode_end(1) and scheduler.reset_due  # still exploring: reset again
    assert scheduler.reset_done(0, 2.0).source == 'explore'

    # Pretraining: the running episode finishes, then no new one starts.
    scheduler.set_learner_stage('pretrain')
    assert scheduler.phase is Phase.RUNNING
    assert scheduler.episode_end(2) and scheduler.phase is Phase.WAITING
    assert not scheduler.reset_due and scheduler.reset_done(0, 3.0) is None
    scheduler.set_learner_stage('practise')  # practising, but the weights are not here yet
    assert scheduler.phase is Phase.WAITING

    # The VAE arrives: practice with imagined goals, episode ids growing on.
    scheduler.model_ready()
    practice = scheduler.reset_done(4, 4.0)
    assert (practice.episode_id, practice.source, practice.explore) == (3, 'prior', True)
    assert practice.mean.shape == (4,) and not scheduler.exploring
    # The same seed imagines the same goals, whatever exploration came first.
    fresh = GoalScheduler(GoalSchedulerConfig(episode_length=7, seed=3))
    fresh.model_ready()
    np.testing.assert_array_equal(fresh.reset_done(4, 0.0).mean, practice.mean)
    scheduler.set_learner_stage('explore')  # a VAE is loaded: practice goes on
    assert scheduler.episode_end(3) and scheduler.reset_done(4, 5.0).source == 'prior'


def test_leaving_the_explore_stage_calls_off_a_pending_reset_and_timeouts_end_episodes():
    scheduler = GoalScheduler(GoalSchedulerConfig(episode_timeout_s=5.0))
    scheduler.set_learner_stage('explore')
    assert scheduler.reset_due
    scheduler.set_learner_stage(None)  # a status without a stage: not exploring
    assert scheduler.phase is Phase.WAITING
    assert scheduler.reset_done(0, 0.0) is None  # the reset answered late starts nothing
    scheduler.set_learner_stage('explore')
    scheduler.reset_done(0, 10.0)
    assert not scheduler.timed_out(14.9)
    assert scheduler.timed_out(15.0) and scheduler.reset_due  # the stage is still explore
    scheduler.reset_done(0, 20.0)
    scheduler.set_learner_stage('pretrain')
    assert scheduler.timed_out(25.0) and scheduler.phase is Phase.WAITING


@pytest.mark.parametrize('config', [
    GoalSchedulerConfig(explore=False), GoalSchedulerConfig(goal_source='image')])
def test_no_exploration_when_disabled_or_reaching(config):
    scheduler = GoalScheduler(config)
    scheduler.set_learner_stage('explore')
    assert not scheduler.reset_due and not scheduler.may_explore
    assert scheduler.reset_done(0, 0.0) is None


def test_learner_status_parsing_and_summary():
    status = parse_learner_status(
        '{"stage": "pretrain", "waiting_for": "VAE pretraining (30/500 steps)", "progress": 0.06}')
    assert status['stage'] == 'pretrain'
    assert learner_status_summary(status) == (
        ', waiting for VAE pretraining (30/500 steps) (6% done)')
    assert parse_learner_status('{"received": 3}')['stage'] is None  # a learner serving weights
    assert parse_learner_status('{"stage": 7}')['stage'] is None
    assert learner_status_summary({'progress': True}) == ''
    for bad in ('{oops', '[1, 2]', '"explore"', ''):
        with pytest.raises(ValueError):
            parse_learner_status(bad)


@pytest.mark.parametrize('field, value, problem', [
    ('goal_source', 'dream', 'goal_source'), ('episode_length', 0, 'episode_length'),
    ('reset_timeout_s', 0.0, 'reset_timeout_s'), ('episode_timeout_s', -1.0, 'episode_timeout_s'),
    ('seed', -1, 'seed'), ('encode_timeout_s', float('nan'), 'encode_timeout_s'),
    ('imagined_goals', 'dreams', 'imagined_goals'), ('frame_pool_size', 0, 'frame_pool_size')])
def test_config_rejects_bad_values(field, value, problem):
    with pytest.raises(ValueError, match=problem):
        GoalSchedulerConfig(**{field: value})
