"""GoalConditionedTD3 and its actor: configs, acting, the TD3 update mechanics, a toy task."""

import numpy as np
import pytest
import torch

from rig_ros.core.actor import Actor, GoalPolicy
from rig_ros.core.noise import ExplorationConfig
from rig_ros.core.replay import GoalReplayBuffer, RelabelConfig
from rig_ros.core.rewards import euclidean_latent_reward
from rig_ros.core.td3 import GoalConditionedTD3, TD3AlgorithmConfig, TD3Config, UpdateSchedule

SMALL = {'hidden_sizes': (32, 32)}


def make_agent(seed: int = 0, **overrides) -> GoalConditionedTD3:
    return GoalConditionedTD3(4, 4, 2, TD3AlgorithmConfig(**{**SMALL, **overrides}), seed=seed)


def random_batch(size: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {'obs': rng.standard_normal((size, 4)), 'goal': rng.standard_normal((size, 4)),
            'next_obs': rng.standard_normal((size, 4)),
            'action': rng.uniform(-1, 1, (size, 2)), 'reward': -rng.random(size)}


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [param.detach().clone() for param in module.parameters()]


def same(left: list[torch.Tensor], right: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(left, right))


@pytest.mark.parametrize('config_type, field, value', [
    (TD3AlgorithmConfig, 'hidden_sizes', ()), (TD3AlgorithmConfig, 'actor_lr', 0.0),
    (TD3AlgorithmConfig, 'gamma', 1.5), (TD3AlgorithmConfig, 'tau', 0.0),
    (TD3AlgorithmConfig, 'policy_delay', 0), (TD3AlgorithmConfig, 'target_noise_clip', -0.1),
    (ExplorationConfig, 'exploration', 'uniform'), (UpdateSchedule, 'batch_size', 0)])
def test_config_rejects_bad_values_by_name(config_type, field, value):
    with pytest.raises(ValueError, match=field):
        config_type(**{field: value})
    if config_type is not ExplorationConfig:  # a host's td3 settings check both parts
        with pytest.raises(ValueError, match=field):
            TD3Config(**{field: value})


def test_td3_config_splits_into_algorithm_and_schedule():
    config = TD3Config(hidden_sizes=[8], gamma=0.9, batch_size=16, learning_starts=7)
    assert config.algorithm == TD3AlgorithmConfig(hidden_sizes=(8,), gamma=0.9)
    assert config.schedule == UpdateSchedule(batch_size=16, learning_starts=7)
    assert not hasattr(config, 'exploration') and not hasattr(config, 'seed')


def test_schedule_owes_updates_from_learning_starts():
    schedule = UpdateSchedule(updates_per_step=3, learning_starts=10)
    assert [schedule.updates_due(n) for n in (0, 9, 10, 11, 15)] == [0, 0, 3, 6, 18]
    assert UpdateSchedule(updates_per_step=2, learning_starts=0).updates_due(5) == 10


def test_act_shapes_range_and_noise():
    agent = make_agent()
    policy = GoalPolicy(agent.actor, ExplorationConfig(exploration_sigma=5.0))
    obs, goal = np.ones(4), np.zeros(4)
    greedy = policy.act(obs, goal, explore=False)
    assert greedy.shape == (2,) and greedy.dtype == np.float32
    np.testing.assert_array_equal(greedy, policy.act(obs, goal, explore=False))
    batch = policy.act(np.ones((5, 4)), np.zeros((5, 4)), explore=True)
    assert batch.shape == (5, 2)
    assert np.abs(batch).max() <= 1.0 and np.abs(batch).max() == 1.0  # clipped, not squashed
    policy.reset_noise()
    assert not np.array_equal(policy.act(obs, goal, explore=True), greedy)


@pytest.mark.parametrize('bad', [np.nan, np.inf])
def test_act_rejects_non_finite_inputs(bad):
    policy = GoalPolicy(make_agent().actor)
    with pytest.raises(ValueError, match='finite'):
        policy.act(np.array([0.0, bad, 0.0, 0.0]), np.zeros(4), explore=False)
    with pytest.raises(ValueError, match='finite'):
        policy.act(np.zeros(4), np.full(4, bad), explore=True)
    with pytest.raises(ValueError, match='expected obs'):
        policy.act(np.zeros(3), np.zeros(4), explore=False)


def test_target_policy_noise_is_clamped():
    agent = make_agent(target_policy_noise=10.0, target_noise_clip=0.3)
    with torch.no_grad():  # target actor outputs exactly 0, so only the noise remains
        agent.actor_target[-2].weight.zero_()  # the last linear layer, before the tanh
        agent.actor_target[-2].bias.zero_()
    action = agent.target_action(torch.randn(1000, 8))
    assert action.abs().max() == pytest.approx(0.3)
    assert ((action.abs() - 0.3).abs() < 1e-6).float().mean() > 0.9  # most noise clamped


def test_actor_and_targets_update_only_every_policy_delay_with_polyak():
    agent = make_agent(policy_delay=2, tau=0.1)
    batch = random_batch()
    actor, critic = params(agent.actor), params(agent.critic1)
    targets = params(agent.actor_target) + params(agent.critic1_target)

    metrics = agent.update(batch)
    assert set(metrics) == {'critic_loss', 'q_mean'}
    assert same(params(agent.actor), actor)
    assert not same(params(agent.critic1), critic)
    assert same(params(agent.actor_target) + params(agent.critic1_target), targets)

    metrics = agent.update(batch)
    assert set(metrics) == {'critic_loss', 'q_mean', 'actor_loss'}
    assert not same(params(agent.actor), actor)
    online = params(agent.actor) + params(agent.critic1)
    moved = params(agent.actor_target) + params(agent.critic1_target)
    for old, new, source in zip(targets, moved, online):
        torch.testing.assert_close(new, old + 0.1 * (source - old))
    assert agent.updates == 2


@pytest.mark.parametrize('done', [0.0, 1.0])
def test_critic_target_is_min_of_twin_targets_unless_done(done):
    agent = make_agent(target_policy_noise=0.0, gamma=0.9)
    batch = random_batch()
    batch['done'] = np.full(16, done)
    tensors = {key: torch.as_tensor(value, dtype=torch.float32) for key, value in batch.items()}
    with torch.no_grad():
        next_inputs = torch.cat([tensors['next_obs'], tensors['goal']], 1)
        next_sa = torch.cat([next_inputs, agent.actor_target(next_inputs)], 1)
        next_q = torch.min(agent.critic1_target(next_sa), agent.critic2_target(next_sa))
        assert not torch.equal(next_q, agent.critic1_target(next_sa))
        target = tensors['reward'].reshape(-1, 1) + 0.9 * (1.0 - done) * next_q
        sa = torch.cat([tensors['obs'], tensors['goal'], tensors['action']], 1)
        expected = sum(torch.mean((critic(sa) - target) ** 2)
                       for critic in (agent.critic1, agent.critic2))
    assert agent.update(batch)['critic_loss'] == pytest.approx(expected.item(), rel=1e-5)


def test_state_dict_round_trip_and_actor_broadcast():
    agent = make_agent(seed=1)
    for _ in range(3):
        agent.update(random_batch())
    obs, goal = np.random.default_rng(0).standard_normal((2, 6, 4))
    copy = make_agent(seed=2)
    copy.load_state_dict(agent.state_dict())
    assert copy.updates == 3
    greedy = GoalPolicy(agent.actor).act(obs, goal, False)
    np.testing.assert_array_equal(GoalPolicy(copy.actor).act(obs, goal, False), greedy)
    torch.testing.assert_close(copy.critic2_target[0].weight, agent.critic2_target[0].weight)
    # Acting loads the actor alone (no critics, targets or optimisers), sizes from the weights.
    acting = Actor.from_state_dict(agent.actor.detached_state_dict())
    assert acting.spec == agent.actor.spec
    assert sum(1 for _ in acting.parameters()) == sum(1 for _ in agent.actor.parameters())
    np.testing.assert_array_equal(GoalPolicy(acting).act(obs, goal, False), greedy)


def test_actor_keeps_the_state_dict_keys_of_earlier_weights():
    """Checkpoints and weights messages name the actor's tensors as an MLP Sequential did."""
    actor = make_agent().actor
    assert list(actor.state_dict()) == ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight',
                                        '4.bias']
    with pytest.raises(ValueError, match='fit'):
        Actor.from_state_dict({**actor.state_dict(), '6.weight': torch.zeros(2, 2)},
                              actor.spec)


STEP_SIZE, HORIZON = 0.2, 20


def point_mass_episode(policy, rng: np.random.Generator,
                       buffer: GoalReplayBuffer | None = None) -> float:
    """Run one 2-D point-mass episode (obs position, goal target); return the final distance."""
    position = rng.uniform(-1, 1, 2).astype(np.float32)
    goal = rng.uniform(-1, 1, 2).astype(np.float32)
    for step in range(HORIZON):
        action = policy(position, goal)
        next_position = np.clip(position + STEP_SIZE * action, -1, 1).astype(np.float32)
        if buffer is not None:
            buffer.add_step(position, action, next_position, goal,
                            episode_end=step == HORIZON - 1)
        position = next_position
    return float(np.linalg.norm(position - goal))


def test_learns_toy_goal_reaching():
    config = TD3Config(hidden_sizes=(64, 64), learning_starts=400)
    agent = GoalConditionedTD3(2, 2, 2, config.algorithm, seed=0)
    policy = GoalPolicy(agent.actor, ExplorationConfig(), seed=0)
    rng = np.random.default_rng(0)
    buffer = GoalReplayBuffer(capacity=10_000, obs_dim=2, goal_dim=2, action_dim=2,
                              reward_fn=euclidean_latent_reward,
                              prior_goal_sampler=lambda n: rng.uniform(-1, 1, (n, 2)),
                              relabel=RelabelConfig(), rng=1)

    def explore(position, goal):
        return policy.act(position, goal, explore=True)

    for _ in range(100):
        policy.reset_noise()
        point_mass_episode(explore, rng, buffer)
        if len(buffer) >= config.learning_starts:
            for _ in range(HORIZON):
                agent.update(buffer.sample(config.batch_size))

    def evaluate(policy):
        return np.mean([point_mass_episode(policy, np.random.default_rng(1000 + episode))
                        for episode in range(100)])

    random_rng = np.random.default_rng(7)
    random_distance = evaluate(lambda position, goal: random_rng.uniform(-1, 1, 2))
    learned_distance = evaluate(lambda position, goal: policy.act(position, goal, False))
    assert learned_distance < 0.3 * random_distance, (learned_distance, random_distance)
