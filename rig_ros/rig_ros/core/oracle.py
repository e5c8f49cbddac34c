"""The state-based oracle: the same TD3 with HER relabeling, on ground-truth state.

It sees what RIG must infer from pixels (hand and puck positions), so it bounds what the
latent-space agent can reach with the same budget, goals and network. States are standardised
with the goal distribution's mean and spread, so observations and rewards have the scale a
VAE latent has (raw metres give rewards of a few centimetres, which TD3 learns poorly).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any, Optional

import numpy as np

from rig_ros.core.actor import GoalPolicy
from rig_ros.core.evaluation import Evaluation
from rig_ros.core.files import hold_run_directory
from rig_ros.core.pipeline import (
    GoalEnv, make_trainer, PipelineConfig, practice_loop, restore_practice, rollout_to_goal,
    sampled_goal_states, save_practice, saved_form)
from rig_ros.core.resets import HAND_DIMS

GOAL_PARTS = ('both', 'hand', 'pucks')
"""Which part of a goal state `mixed_goal_states` takes from the explored states."""


class StateScaler:
    """Standardises states with the mean and spread of the task's goal distribution.

    Each coordinate by its own spread (the oracle's reference), or with `shared_scale` all by
    the mean of those spreads: a centimetre of hand and of puck then weigh alike in the reward
    (by their own spreads a centimetre of the pusher's hand counts 2-4x one of its puck).
    """

    def __init__(self, env: GoalEnv, samples: int = 2000, seed: int = 0,
                 shared_scale: bool = False) -> None:
        goals = sampled_goal_states(env, samples, seed)
        self.mean = goals.mean(axis=0)
        self.scale = np.maximum(goals.std(axis=0), 1e-3)  # fixed coordinates stay finite
        if shared_scale:
            self.scale = np.full_like(self.scale, self.scale.mean())

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """Return the standardised state."""
        return ((np.asarray(state) - self.mean) / self.scale).astype(np.float32)


def train_oracle(env: GoalEnv, config: PipelineConfig, scaler: StateScaler,
                 progress: bool = True, goal_states: Optional[np.ndarray] = None,
                 checkpoint_dir: Optional[pathlib.Path] = None) -> tuple[GoalPolicy, float]:
    """Practise on true state with goals from the task's goal space; returns (policy, wall s).

    The reward is the Euclidean distance of standardised states whatever `config.reward` says
    (the Mahalanobis metric is the VAE encoder's). `goal_states` (N, state_dim): draw the
    practice and imagined goals uniformly from these instead (the states random exploration
    saw are the oracle's counterpart of RIG's frames' goals). `checkpoint_dir`: checkpoint there
    every `config.checkpoint_every` steps and resume from it, as RIG's runs do (the wall time
    returned is summed over the sessions); a checkpoint of another configuration is refused,
    and so is a folder another process holds (`files.RunDirectoryInUse`).
    """
    state_dim = env.state_vector().shape[0]
    if goal_states is not None and (goal_states.ndim != 2 or len(goal_states) == 0
                                    or goal_states.shape[1] != state_dim):
        raise ValueError(f'goal_states must be (N > 0, {state_dim}), got {goal_states.shape}')
    rng = np.random.default_rng(config.seed + 2)

    def goal_space(count: int) -> np.ndarray:
        if goal_states is not None:
            return scaler(goal_states[rng.integers(len(goal_states), size=count)])
        return np.stack([scaler(env.sample_goal_state(rng)) for _ in range(count)])

    trainer = make_trainer(dataclasses.replace(config, reward='euclidean'), state_dim,
                           env.action_dim, goal_space)
    policy = trainer.acting_policy(config.exploration)
    step, earlier_s = 0, 0.0
    start = time.perf_counter()
    settings = {'config': saved_form(config), 'scale': scaler.scale.tolist(),
                'goal_states': None if goal_states is None else len(goal_states)}
    if checkpoint_dir is not None:
        hold_run_directory(checkpoint_dir)  # a second oracle on it would overwrite this one's
        rl_path = checkpoint_dir / 'oracle_rl.safetensors'
        replay_path = checkpoint_dir / 'oracle_replay.npz'
        restored = restore_practice(trainer, rl_path, replay_path)
        if restored is not None:
            step, metadata, _ = restored
            if metadata.get('settings') != settings:
                raise ValueError(f'{checkpoint_dir} holds an oracle of another configuration; '
                                 'remove it or use another folder')
            earlier_s = float(metadata['train_s'])
            rng = np.random.default_rng((config.seed + 2, step))  # not the first steps' draws

    def after_step(at_step: int) -> None:
        if checkpoint_dir is not None and (at_step % config.checkpoint_every == 0
                                           or at_step == config.rl_steps):
            save_practice(trainer, config.td3, rl_path, replay_path, at_step,
                          {'settings': settings,
                           'train_s': earlier_s + time.perf_counter() - start})

    practice_loop(env, trainer, policy, lambda: (scaler(env.state_vector()), None),
                  lambda: goal_space(1)[0], config, rng, step, after_step, progress=progress)
    return policy, earlier_s + time.perf_counter() - start


def mixed_goal_states(explored: np.ndarray, goal_space: np.ndarray,
                      from_explored: str) -> np.ndarray:
    """Return goal states whose `from_explored` part ('both', 'hand', 'pucks') is explored's.

    Row i joins explored row i with goal-space row i (the rest of the state), so the oracle can
    practise on exploration's hands with the goal space's pucks, or the reverse: which part of
    RIG's exploration goals keeps it from pushing.
    """
    if from_explored not in GOAL_PARTS:
        raise ValueError(f'from_explored must be one of {GOAL_PARTS}, got {from_explored!r}')
    explored, goal_space = np.asarray(explored, float), np.asarray(goal_space, float)
    if explored.shape != goal_space.shape or explored.ndim != 2:
        raise ValueError(f'explored {explored.shape} and goal_space {goal_space.shape} must be '
                         'the same (N, state_dim)')
    if from_explored == 'both':
        return explored.copy()
    mixed = goal_space.copy()
    part = slice(0, HAND_DIMS) if from_explored == 'hand' else slice(HAND_DIMS, None)
    mixed[:, part] = explored[:, part]
    return mixed


def evaluate_oracle(env: GoalEnv, policy: GoalPolicy, config: PipelineConfig,
                    scaler: StateScaler, goal_states: np.ndarray) -> Evaluation:
    """Reach each goal state from the true state, policy without noise."""
    results = []
    for index, goal_state in enumerate(goal_states):
        goal = scaler(goal_state)
        results.append(rollout_to_goal(
            env, lambda: policy.act(scaler(env.state_vector()), goal, explore=False),
            config.episode_length, goal_state, reset_seed=index))
    return Evaluation.from_results(results, config.success_threshold_m)


def oracle_figures(env: GoalEnv, config: PipelineConfig, goal_states: np.ndarray,
                   progress: bool = True) -> dict[str, Any]:
    """Train and evaluate the oracle; figures keyed `oracle_*`."""
    scaler = StateScaler(env, seed=config.seed)
    policy, wall_s = train_oracle(env, config, scaler, progress)
    return {**evaluate_oracle(env, policy, config, scaler, goal_states).summary('oracle'),
            'oracle_wall_s': wall_s}
