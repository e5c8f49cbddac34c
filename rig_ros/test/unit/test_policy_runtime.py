"""PolicyRuntime: gating, staleness, episode steps, transition assembly, weights (no ROS)."""

import numpy as np
import pytest
import torch

from rig_ros.core.actor import Actor, PolicySpec
from rig_ros.core.checkpoints import serialize_state
from rig_ros.core.policy_runtime import (
    decode_policy_weights, encode_policy_weights, EpisodeGoal, Latent, PolicyConfig, PolicyRuntime)
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


def test_config_rejects_bad_values_by_name():
    for field, value in (('control_rate_hz', 0.0), ('stale_after_s', -1.0),
                         ('max_speed_m_s', 0.0), ('ou_theta', 2.0)):
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
