"""PolicyRuntime: gating, staleness, episode steps, transitions, exploration, weights (no ROS)."""

from factories import puck_frame, puck_tracker_file
import numpy as np
import pytest
import torch

from rig_ros.core.actor import Actor, PolicySpec
from rig_ros.core.checkpoints import serialize_state
from rig_ros.core.hands import HandBox
from rig_ros.core.policy_runtime import (
    decode_policy_weights, encode_policy_weights, EpisodeGoal, EXPLORE_SOURCE, Frame, Latent,
    PolicyConfig, PolicyRuntime)
from rig_ros.core.pushes import PUSH_BEHIND_M
from rig_ros.core.td3 import GoalConditionedTD3, TD3AlgorithmConfig

DIM = 4


def make_runtime(**overrides) -> PolicyRuntime:
    return PolicyRuntime(PolicyConfig(**{'start_active': True, **overrides}))


def actor(seed: int = 0, hidden=(16,), action_dim: int = 2) -> Actor:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Actor(PolicySpec(DIM, DIM, action_dim, hidden))


def weights(seed: int = 0, hidden=(16,)) -> bytes:
    return encode_policy_weights(actor(seed, hidden))[1]


def goal(episode_id=1, length=3, explore=True, stamp=10.0) -> EpisodeGoal:
    return EpisodeGoal(np.full(DIM, 0.5), episode_id, length, explore, stamp)


def latent(value: float, stamp: float) -> Latent:
    return Latent(np.full(DIM, value), stamp)


def explore_goal(episode_id=1, length=12, stamp=10.0) -> EpisodeGoal:
    return EpisodeGoal(np.zeros(0), episode_id, length, True, stamp, EXPLORE_SOURCE)


def frame(value: int, stamp: float) -> Frame:
    return Frame(np.full((84, 84, 3), value % 256, np.uint8), stamp)


def test_config_rejects_bad_values_by_name():
    for field, value in (('control_rate_hz', 0.0), ('stale_after_s', -1.0),
                         ('max_speed_m_s', 0.0), ('ou_theta', 2.0), ('explore_hold_steps', 0),
                         ('image_size', 0), ('hand_stamp_tolerance_s', 0.0)):
        with pytest.raises(ValueError, match=field):
            PolicyConfig(**{field: value})


def test_acting_loads_the_actor_alone():
    runtime = make_runtime()
    runtime.load_weights(weights(hidden=(8, 6)), 1)
    assert isinstance(runtime.policy.actor, Actor)
    assert runtime.policy.spec == PolicySpec(DIM, DIM, 2, (8, 6))
    assert runtime.policy.exploration.exploration == 'ou'  # the config's exploration fields


def test_zero_unless_active_with_fresh_latent_and_goal():
    runtime = make_runtime(start_active=False)
    assert runtime.step(10.0).reason == 'inactive'
    runtime.set_active(True)
    assert runtime.step(10.0).reason == 'no goal'
    runtime.set_goal(goal())
    assert runtime.step(10.0).reason == 'no latent'
    runtime.set_latent(latent(0.0, 9.0))  # before the episode started
    assert runtime.step(10.0).reason == 'latent older than the episode'
    runtime.set_latent(latent(0.0, 10.0))
    result = runtime.step(10.5)  # 0.5 s old > stale_after_s 0.3
    assert result.reason == 'stale latent' and not result.velocity.any()
    runtime.set_latent(latent(0.0, 10.4))
    result = runtime.step(10.5)
    assert result.acted and result.reason == 'act'
    np.testing.assert_allclose(result.velocity, result.action * 0.2, rtol=1e-6)
    assert result.action.any()  # random exploration before the first weights
    runtime.set_active(False)
    result = runtime.step(10.5)
    assert result.reason == 'inactive' and not result.velocity.any()


def test_lockstep_ignores_age_and_non_finite_values_stop():
    runtime = make_runtime(act_on_latent=True)
    runtime.set_goal(goal())
    runtime.set_latent(latent(0.0, 10.0))
    assert runtime.step(1000.0).acted  # no staleness in lockstep
    runtime.set_latent(Latent(np.array([0.0, np.nan, 0.0, 0.0]), 11.0))
    result = runtime.step(1000.0)
    assert result.reason == 'non-finite latent or goal' and np.isfinite(result.velocity).all()
    assert not result.velocity.any()


def test_greedy_without_weights_stands_still():
    runtime = make_runtime()
    runtime.set_goal(goal(explore=False))
    runtime.set_latent(latent(0.0, 10.0))
    assert runtime.step(10.0).reason == 'no policy weights'
    runtime.load_weights(weights(), 1)
    assert runtime.step(10.0).acted


def test_episode_steps_transitions_and_end():
    runtime = make_runtime(act_on_latent=True)
    runtime.load_weights(weights(), 7)
    runtime.set_goal(goal(length=3))
    transitions, actions = [], []
    for t in range(5):
        runtime.set_latent(latent(float(t), 10.0 + t))
        result = runtime.step(0.0)
        if result.transition:
            transitions.append(result.transition)
        if result.acted:
            actions.append(result.action)
        # Deciding again on the same latent takes no step and closes nothing.
        again = runtime.step(0.0)
        assert not again.acted and again.transition is None
    assert len(actions) == 3 and runtime.episode_over
    assert [tr.step_index for tr in transitions] == [0, 1, 2]
    assert [tr.episode_end for tr in transitions] == [False, False, True]
    for t, tr in enumerate(transitions):
        np.testing.assert_array_equal(tr.observation, np.full(DIM, float(t)))
        np.testing.assert_array_equal(tr.next_observation, np.full(DIM, float(t + 1)))
        np.testing.assert_array_equal(tr.action, actions[t])
        np.testing.assert_array_equal(tr.goal, np.full(DIM, 0.5))
        assert (tr.episode_id, tr.policy_version, tr.stamp) == (1, 7, 11.0 + t)
    assert runtime.step(0.0).reason == 'episode over'
    # A new episode restarts the count; a re-delivered latched goal does not.
    assert runtime.set_goal(goal(episode_id=2, length=3, stamp=20.0))
    assert not runtime.set_goal(goal(episode_id=2, length=3, stamp=20.0))
    runtime.set_latent(latent(9.0, 20.0))
    result = runtime.step(0.0)
    assert result.acted and result.transition is None and runtime.steps == 1


def test_timer_mode_holds_the_action_until_the_next_latent():
    runtime = make_runtime()
    runtime.load_weights(weights(), 1)
    runtime.set_goal(goal(length=0, explore=False))
    runtime.set_latent(latent(0.0, 10.0))
    first = runtime.step(10.05)
    held = runtime.step(10.15)
    assert first.acted and not held.acted and held.reason == 'hold'
    np.testing.assert_array_equal(first.action, held.action)
    runtime.set_latent(latent(1.0, 10.2))
    result = runtime.step(10.25)
    assert result.acted and result.transition.step_index == 0
    assert not result.transition.episode_end  # unlimited episode
    # A stale latent drops the pending action: no transition for it.
    runtime.set_latent(latent(2.0, 10.3))
    assert runtime.step(11.0).reason == 'stale latent'
    runtime.set_latent(latent(3.0, 11.0))
    result = runtime.step(11.0)
    assert result.acted and result.transition is None


def test_weights_change_actions_and_bad_payloads_keep_the_old():
    runtime = make_runtime()
    runtime.set_goal(goal(explore=False))
    runtime.load_weights(weights(seed=1), 1)
    obs = np.full(DIM, 0.3)
    before = runtime.policy.act(obs, np.full(DIM, 0.5), explore=False)
    for bad in (b'', b'garbage' * 10, weights(hidden=(16,))[:-10]):
        with pytest.raises(ValueError):
            runtime.load_weights(bad, 2)
    wrong_action = encode_policy_weights(actor(action_dim=3))[1]
    with pytest.raises(ValueError, match='3'):
        runtime.load_weights(wrong_action, 2)
    state = actor().detached_state_dict()
    state['0.weight'][0, 0] = float('nan')
    spec = {'obs_dim': DIM, 'goal_dim': DIM, 'action_dim': 2, 'hidden_sizes': [16]}
    with pytest.raises(ValueError, match='NaN'):
        runtime.load_weights(serialize_state(state, spec), 2)
    assert runtime.version == 1
    np.testing.assert_array_equal(before, runtime.policy.act(obs, np.full(DIM, 0.5), False))
    runtime.load_weights(weights(seed=2), 2)
    assert runtime.version == 2
    assert not np.allclose(before, runtime.policy.act(obs, np.full(DIM, 0.5), False))
    # Other latent sizes than the actor's stop the robot.
    runtime.set_goal(EpisodeGoal(np.zeros(3), 5, 0, False, 0.0))
    runtime.set_latent(Latent(np.zeros(3), 1.0))
    assert 'differs' in runtime.step(1.0).reason


def test_weights_round_trip():
    agent = GoalConditionedTD3(DIM, DIM, 2, TD3AlgorithmConfig(hidden_sizes=(8, 6)))
    config_json, data = encode_policy_weights(agent)  # a TD3 agent's actor, as the learner's
    state, spec = decode_policy_weights(data)
    assert (spec.obs_dim, spec.action_dim, spec.hidden_sizes) == (DIM, 2, (8, 6))
    assert '"hidden_sizes": [8, 6]' in config_json
    for key, value in agent.actor.detached_state_dict().items():
        assert (state[key] == value).all()


def explore(runtime: PolicyRuntime, steps: int, first_stamp: float = 10.0) -> tuple[list, list]:
    """Feed `steps` frames (value t, stamp first_stamp + t), deciding once per frame."""
    actions, transitions = [], []
    for t in range(steps):
        runtime.set_frame(frame(t, first_stamp + t))
        result = runtime.step(first_stamp + t)
        if result.acted:
            actions.append(result.action)
        if result.transition is not None:
            transitions.append(result.transition)
    return actions, transitions


def test_exploration_holds_uniform_random_actions_for_k_steps_seeded():
    runtime = make_runtime(act_on_latent=True, explore_hold_steps=3, seed=5)
    runtime.load_weights(weights(), 4)  # weights are not used in exploration episodes
    runtime.set_goal(explore_goal(length=12))
    assert runtime.exploring
    actions, _ = explore(runtime, 14)
    assert len(actions) == 12 and runtime.episode_over
    assert runtime.step(30.0).reason == 'episode over'
    for block in range(4):
        held = actions[3 * block:3 * block + 3]
        assert all(np.array_equal(held[0], action) for action in held[1:])
    distinct = {tuple(action) for action in actions}
    assert len(distinct) == 4
    stacked = np.stack(actions)
    assert stacked.dtype == np.float32 and stacked.shape == (12, 2)
    assert (np.abs(stacked) <= 1.0).all()
    # Seeded: the same seed repeats the actions, another seed does not.
    again = make_runtime(act_on_latent=True, explore_hold_steps=3, seed=5)
    again.set_goal(explore_goal(length=12))
    np.testing.assert_array_equal(np.stack(explore(again, 12)[0]), stacked)
    other = make_runtime(act_on_latent=True, explore_hold_steps=3, seed=6)
    other.set_goal(explore_goal(length=12))
    assert not np.array_equal(np.stack(explore(other, 12)[0]), stacked)


def test_exploration_actions_cover_the_range():
    runtime = make_runtime(act_on_latent=True, explore_hold_steps=1)
    runtime.set_goal(explore_goal(length=0))
    actions = np.stack(explore(runtime, 400)[0])
    assert len({tuple(action) for action in actions}) == 400  # a new action every step
    assert actions.min() < -0.9 and actions.max() > 0.9 and abs(actions.mean()) < 0.1


def test_exploration_transitions_carry_frames_and_no_latents():
    runtime = make_runtime(act_on_latent=True, explore_hold_steps=2)
    runtime.set_latent(latent(0.3, 10.0))  # latents play no part in an exploration episode
    runtime.set_goal(explore_goal(length=3))
    actions, transitions = explore(runtime, 5)
    assert [tr.step_index for tr in transitions] == [0, 1, 2]
    assert [tr.episode_end for tr in transitions] == [False, False, True]
    for t, tr in enumerate(transitions):
        assert tr.observation.size == tr.next_observation.size == tr.goal.size == 0
        assert (tr.vae_version, tr.next_vae_version, tr.policy_version) == (0, 0, 0)
        np.testing.assert_array_equal(tr.action, actions[t])
        assert tr.image.shape == (84, 84, 3) and tr.image.dtype == np.uint8
        assert (tr.image == t).all() and (tr.next_image == t + 1).all()
        assert (tr.episode_id, tr.stamp) == (1, 11.0 + t)


def test_exploration_gating_and_timer_mode():
    runtime = make_runtime(start_active=False)
    runtime.set_goal(explore_goal(length=0))
    runtime.set_frame(frame(0, 10.0))
    assert runtime.step(10.0).reason == 'inactive'
    runtime.set_active(True)
    fresh = make_runtime()
    fresh.set_goal(explore_goal())
    assert fresh.step(10.0).reason == 'no frame'
    runtime.set_frame(frame(0, 9.0))
    assert runtime.step(10.0).reason == 'frame older than the episode'
    runtime.set_frame(frame(1, 10.0))
    assert runtime.step(10.5).reason == 'stale frame'
    runtime.set_frame(frame(2, 10.4))
    first = runtime.step(10.45)
    held = runtime.step(10.5)
    assert first.acted and first.action.any() and held.reason == 'hold'
    np.testing.assert_array_equal(held.velocity, first.action * np.float32(0.2))
    assert runtime.step(11.0).reason == 'stale frame'  # drops the pending action
    runtime.set_frame(frame(3, 11.0))
    result = runtime.step(11.0)
    assert result.acted and result.transition is None and runtime.steps == 2
    runtime.set_active(False)
    assert not runtime.step(11.0).velocity.any()
    # A robot that must never explore does not move in an exploration episode.
    never = make_runtime(explore=False)
    never.set_goal(explore_goal())
    never.set_frame(frame(0, 10.0))
    assert 'explore is false' in never.step(10.0).reason


def test_malformed_frames_are_refused_and_keep_the_last_good_one():
    runtime = make_runtime(act_on_latent=True)
    runtime.set_goal(explore_goal())
    runtime.set_frame(frame(7, 10.0))
    for bad in (np.zeros((84, 84, 3), np.float32), np.zeros((48, 48, 3), np.uint8),
                np.zeros((84, 84), np.uint8)):
        with pytest.raises(ValueError, match='84x84x3'):
            runtime.set_frame(Frame(bad, 11.0))
    assert runtime.frame.stamp == 10.0
    result = runtime.step(12.0)
    assert result.acted
    runtime.set_frame(frame(8, 11.0))
    assert (runtime.step(12.0).transition.image == 7).all()


def test_practice_transitions_carry_latent_versions_and_matching_frames():
    runtime = make_runtime(act_on_latent=True)
    runtime.load_weights(weights(), 2)
    runtime.set_goal(goal(length=3))
    runtime.set_frame(frame(10, 10.0))
    runtime.set_latent(Latent(np.full(DIM, 0.0), 10.0, model_version=1))
    assert runtime.step(0.0).acted
    runtime.set_frame(frame(11, 11.0))
    runtime.set_latent(Latent(np.full(DIM, 1.0), 11.0, model_version=2))  # a fine-tuned VAE
    tr = runtime.step(0.0).transition
    assert (tr.vae_version, tr.next_vae_version, tr.policy_version) == (1, 2, 2)
    assert (tr.image == 10).all() and (tr.next_image == 11).all()
    # A latent whose frame never arrived: no next image.
    runtime.set_latent(Latent(np.full(DIM, 2.0), 12.0, model_version=2))
    tr = runtime.step(0.0).transition
    assert (tr.image == 11).all() and tr.next_image is None
    assert (tr.vae_version, tr.next_vae_version) == (2, 2)


def test_transitions_carry_the_hand_at_each_observation():
    runtime = make_runtime(act_on_latent=True, hand_stamp_tolerance_s=0.05)
    runtime.load_weights(weights(), 1)
    runtime.set_goal(goal(length=0))
    runtime.set_hand(10.0, np.array([0.0, 0.6, 0.2]))
    runtime.set_hand(11.03, np.array([0.1, 0.6, 0.2]))  # a driver's stamp near the frame's
    for stamp in (10.0, 11.0, 12.0):  # no hand known near 12.0
        runtime.set_frame(frame(int(stamp), stamp))
        runtime.set_latent(latent(stamp, stamp))
        result = runtime.step(0.0)
        if stamp == 11.0:
            tr = result.transition
            assert tr.hand.dtype == np.float32
            np.testing.assert_allclose(tr.hand, [0.0, 0.6, 0.2])
            np.testing.assert_allclose(tr.next_hand, [0.1, 0.6, 0.2])
    assert result.transition.next_hand is None
    # Exploration transitions too.
    runtime.set_goal(explore_goal(episode_id=2, stamp=20.0))
    runtime.set_hand(20.0, np.array([0.0, 0.55, 0.2]))
    runtime.set_hand(21.0, np.array([0.0, 0.65, 0.2]))
    runtime.set_frame(frame(0, 20.0))
    runtime.step(0.0)
    runtime.set_frame(frame(1, 21.0))
    tr = runtime.step(0.0).transition
    np.testing.assert_allclose([tr.hand[1], tr.next_hand[1]], [0.55, 0.65])


def test_practice_frames_are_forgotten_after_thirty_and_optional():
    runtime = make_runtime(act_on_latent=True)
    runtime.set_goal(goal(length=0))
    runtime.set_frame(frame(0, 10.0))
    runtime.set_latent(latent(0.0, 10.0))
    assert runtime.step(0.0).acted
    for t in range(1, 31):  # 30 newer frames push out the first
        runtime.set_frame(frame(t, 10.0 + t))
    runtime.set_latent(latent(1.0, 40.0))
    tr = runtime.step(0.0).transition
    assert tr.image is None and (tr.next_image == 30).all()
    without = make_runtime(act_on_latent=True, transition_images=False)
    without.set_goal(goal(length=0))
    for t in range(2):
        without.set_frame(frame(t, 10.0 + t))
        without.set_latent(Latent(np.full(DIM, float(t)), 10.0 + t, model_version=3))
        result = without.step(0.0)
    assert result.transition.image is None and result.transition.next_image is None
    assert result.transition.next_vae_version == 3


PUCK_BOX = HandBox((-0.2, 0.5), (0.2, 0.7))


def drive(runtime: PolicyRuntime, puck, hand: np.ndarray, steps: int) -> list[np.ndarray]:
    """Run an exploration episode on puck frames, the hand moving as the commands say."""
    hands = []
    for t in range(steps):
        stamp = 11.0 + t
        runtime.set_hand(stamp, hand)
        runtime.set_frame(Frame(puck_frame(puck, 84), stamp))
        hand = hand + runtime.step(stamp).action * 0.02  # 2 cm per step at action 1
        hands.append(hand)
    return hands


def test_aimed_pushes_go_behind_the_puck_the_camera_sees_then_through_it(tmp_path):
    runtime = make_runtime(act_on_latent=True, explore_hold_steps=20, explore_aimed_pushes=1.0,
                           explore_push_box=PUCK_BOX,
                           puck_tracker_file=puck_tracker_file(tmp_path))
    puck = np.array([0.1, 0.6])
    runtime.set_goal(explore_goal(length=20))
    hands = drive(runtime, puck, np.array([0.0, 0.55]), 20)
    behind = hands[9] - puck  # the approach: the first half of the held steps
    assert np.linalg.norm(behind) == pytest.approx(PUSH_BEHIND_M, abs=0.01)
    through = hands[-1] - puck  # then along the same line, past the puck (no physics here)
    assert behind @ through / (np.linalg.norm(behind) * np.linalg.norm(through)) < -0.95


def test_a_puck_the_camera_does_not_see_leaves_the_random_actions(tmp_path):
    plain = make_runtime(act_on_latent=True, explore_hold_steps=5)
    aimed = make_runtime(act_on_latent=True, explore_hold_steps=5, explore_aimed_pushes=1.0,
                         explore_push_box=PUCK_BOX, puck_tracker_file=puck_tracker_file(tmp_path))
    for runtime in (plain, aimed):
        runtime.set_goal(explore_goal(length=10))
    hand = np.array([0.0, 0.6])
    np.testing.assert_array_equal(drive(aimed, None, hand, 10), drive(plain, None, hand, 10))


def test_aimed_pushes_need_a_box_and_a_readable_puck_tracker_file(tmp_path):
    with pytest.raises(ValueError, match='explore_push_box and puck_tracker_file'):
        PolicyConfig(explore_aimed_pushes=0.5, explore_push_box=PUCK_BOX)
    with pytest.raises(ValueError, match='explore_aimed_pushes'):
        PolicyConfig(explore_aimed_pushes=1.5)
    (tmp_path / 'bad.json').write_text('{"format": 3}')
    with pytest.raises(ValueError, match='bad.json is not a puck tracker'):
        make_runtime(explore_aimed_pushes=0.5, explore_push_box=PUCK_BOX,
                     puck_tracker_file=str(tmp_path / 'bad.json'))
