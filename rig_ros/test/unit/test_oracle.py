"""The state-based oracle: standardised states and a short end-to-end run on the reacher."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from rig_ros.core import checkpoints
from rig_ros.core.oracle import mixed_goal_states, oracle_figures, StateScaler, train_oracle
from rig_ros.core.pipeline import evaluation_goals, PipelineConfig
from rig_ros.core.td3 import TD3Config
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig


def test_state_scaler_standardises_the_goal_distribution():
    with SawyerSim(SawyerSimConfig(task='pusher')) as sim:
        scaler = StateScaler(sim, samples=3000, seed=1)
        rng = np.random.default_rng(7)
        scaled = np.stack([scaler(sim.sample_goal_state(rng)) for _ in range(3000)])
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=0.1)
    assert scaled.dtype == np.float32


def test_shared_scale_weighs_every_coordinate_alike():
    with SawyerSim(SawyerSimConfig(task='pusher')) as sim:
        own = StateScaler(sim, samples=500, seed=1)
        shared = StateScaler(sim, samples=500, seed=1, shared_scale=True)
    # The pusher's hand box is narrower than its puck box: by their own spreads a centimetre
    # of hand counts more.
    assert own.scale[0] < own.scale[2]
    np.testing.assert_allclose(shared.mean, own.mean)
    np.testing.assert_allclose(shared.scale, own.scale.mean())
    step = np.eye(4)[[0, 2]] * 0.01  # a centimetre of hand x, then of puck x
    moved = [np.linalg.norm(shared(own.mean + delta) - shared(own.mean)) for delta in step]
    assert moved[0] == pytest.approx(moved[1])


def test_oracle_figures_cover_the_same_goals():
    config = PipelineConfig(rl_steps=200, episode_length=20, eval_goals=3,
                            td3=TD3Config(learning_starts=50, updates_per_step=1,
                                          hidden_sizes=(32, 32), batch_size=32))
    with SawyerSim(SawyerSimConfig(task='reacher')) as sim:
        figures = oracle_figures(sim, config, evaluation_goals(sim, 3, 0), progress=False)
    assert set(figures) == {'oracle_success_rate', 'oracle_final_hand_distance_median',
                            'oracle_final_hand_distance_mean', 'oracle_wall_s'}
    assert 0.0 <= figures['oracle_success_rate'] <= 1.0
    assert figures['oracle_final_hand_distance_median'] < 0.5


def test_oracle_practises_on_given_goal_states_and_refuses_a_wrong_shape():
    config = PipelineConfig(task='pusher', rl_steps=100, episode_length=10,
                            td3=TD3Config(learning_starts=50, updates_per_step=1,
                                          hidden_sizes=(32, 32), batch_size=32))
    with SawyerSim(SawyerSimConfig(task='pusher')) as sim:
        scaler = StateScaler(sim, samples=100)
        states = np.stack([sim.state_vector()] * 5)
        policy, wall_s = train_oracle(sim, config, scaler, progress=False, goal_states=states)
        assert wall_s > 0
        action = policy.act(scaler(states[0]), scaler(states[0]), explore=False)
        assert action.shape == (sim.action_dim,) and np.isfinite(action).all()
        for wrong in (states[:, :2], states[:0], states[0]):
            with pytest.raises(ValueError, match='goal_states'):
                train_oracle(sim, config, scaler, progress=False, goal_states=wrong)


def test_an_interrupted_oracle_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    config = PipelineConfig(task='pusher', rl_steps=100, episode_length=10, checkpoint_every=40,
                            td3=TD3Config(learning_starts=20, updates_per_step=1,
                                          hidden_sizes=(32, 32), batch_size=16))
    folder = tmp_path / 'oracle'

    def saved(where: pathlib.Path = folder) -> dict:
        return checkpoints.load_checkpoint(where / 'oracle_rl.safetensors').metadata

    with SawyerSim(SawyerSimConfig(task='pusher')) as sim:
        scaler = StateScaler(sim, samples=100)
        real_step, steps = sim.step, []

        def crashing_step(action):
            steps.append(action)
            if len(steps) > 70:
                raise KeyboardInterrupt
            return real_step(action)

        monkeypatch.setattr(sim, 'step', crashing_step)
        with pytest.raises(KeyboardInterrupt):
            train_oracle(sim, config, scaler, progress=False, checkpoint_dir=folder)
        assert saved()['step'] == 40  # the last checkpoint before the crash
        monkeypatch.setattr(sim, 'step', real_step)
        policy, wall_s = train_oracle(sim, config, scaler, progress=False, checkpoint_dir=folder)
        train_oracle(sim, config, scaler, progress=False, checkpoint_dir=tmp_path / 'whole')
        assert saved()['step'] == 100
        # The resumed run owes and pays the updates of one that never stopped.
        assert saved()['updates'] == saved(tmp_path / 'whole')['updates'] > 0
        assert wall_s >= saved()['train_s'] > 0  # summed over both sessions
        # A finished oracle is read back: no step is practised twice.
        monkeypatch.setattr(sim, 'step', crashing_step)
        steps.clear()
        _, again_s = train_oracle(sim, config, scaler, progress=False, checkpoint_dir=folder)
        assert not steps and again_s >= saved()['train_s']
        # The oracle holds its folder: a second process (a second oracle) is refused it.
        second = subprocess.run(
            [sys.executable, '-c', 'import sys\nfrom rig_ros.core.files import '
             'hold_run_directory, RunDirectoryInUse\ntry:\n    hold_run_directory(sys.argv[1])'
             '\nexcept RunDirectoryInUse:\n    print("in use")', str(folder)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)})
        assert second.stdout.strip() == 'in use'
        with pytest.raises(ValueError, match='another configuration'):
            train_oracle(sim, PipelineConfig(**{**config.__dict__, 'rl_steps': 120}), scaler,
                         progress=False, checkpoint_dir=folder)


def test_mixed_goal_states_take_one_part_from_exploration_and_the_rest_from_the_goal_space():
    explored = np.arange(12.0).reshape(2, 6)  # hand (x, y), then two pucks
    goal_space = -np.arange(12.0).reshape(2, 6)
    hand = mixed_goal_states(explored, goal_space, 'hand')
    np.testing.assert_array_equal(hand[:, :2], explored[:, :2])
    np.testing.assert_array_equal(hand[:, 2:], goal_space[:, 2:])
    pucks = mixed_goal_states(explored, goal_space, 'pucks')
    np.testing.assert_array_equal(pucks[:, :2], goal_space[:, :2])
    np.testing.assert_array_equal(pucks[:, 2:], explored[:, 2:])
    both = mixed_goal_states(explored, goal_space, 'both')
    np.testing.assert_array_equal(both, explored)
    both[0, 0] = 99.0  # a copy: the explored states stay as they were
    assert explored[0, 0] == 0.0
    with pytest.raises(ValueError, match='from_explored'):
        mixed_goal_states(explored, goal_space, 'puck')
    with pytest.raises(ValueError, match='same'):
        mixed_goal_states(explored, goal_space[:1], 'hand')
