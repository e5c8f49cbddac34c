"""The state-based oracle: the same TD3 with HER relabeling, on ground-truth state.

It sees what RIG must infer from pixels (hand and puck positions), so it bounds what the
latent-space agent can reach with the same budget, goals and network.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rig_ros.core.pipeline import (
    _evaluation, Evaluation, GoalEnv, make_agent, PipelineConfig, practice_loop,
    rollout_to_goal)
from rig_ros.core.replay import GoalReplayBuffer
from rig_ros.core.rewards import euclidean_latent_reward
from rig_ros.core.td3 import GoalConditionedTD3


def train_oracle(env: GoalEnv, config: PipelineConfig,
                 progress: bool = True) -> tuple[GoalConditionedTD3, float]:
    """Practise on true state with goals from the task's goal space; returns (agent, wall s)."""
    rng = np.random.default_rng(config.seed + 2)
    state_dim = env.state_vector().shape[0]
    agent = make_agent(config, state_dim, state_dim, env.action_dim)

    def goal_space(count: int) -> np.ndarray:
        return np.stack([env.sample_goal_state(rng) for _ in range(count)]).astype(np.float32)

    buffer = GoalReplayBuffer(
        capacity=config.replay_capacity, obs_dim=state_dim, goal_dim=state_dim,
        action_dim=env.action_dim, reward_fn=euclidean_latent_reward,
        prior_goal_sampler=goal_space, relabel=config.relabel, rng=config.seed)
    start = time.perf_counter()
    practice_loop(env, agent, buffer, lambda: (env.state_vector(), None),
                  lambda: goal_space(1)[0], config, rng, 0, lambda step: None,
                  progress=progress)
    return agent, time.perf_counter() - start


def evaluate_oracle(env: GoalEnv, agent: GoalConditionedTD3, config: PipelineConfig,
                    goal_states: np.ndarray) -> Evaluation:
    """Reach each goal state from the true state, policy without noise."""
    results = []
    for index, goal_state in enumerate(goal_states):
        results.append(rollout_to_goal(
            env, lambda: agent.act(env.state_vector(), goal_state, explore=False),
            config.episode_length, goal_state, reset_seed=index))
    return _evaluation(results, config.success_threshold_m)


def oracle_figures(env: GoalEnv, config: PipelineConfig, goal_states: np.ndarray,
                   progress: bool = True) -> dict[str, Any]:
    """Train and evaluate the oracle; figures keyed `oracle_*`."""
    agent, wall_s = train_oracle(env, config, progress)
    return {**evaluate_oracle(env, agent, config, goal_states).summary('oracle'),
            'oracle_wall_s': wall_s}
