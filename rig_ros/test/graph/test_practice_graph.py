"""RIG end to end through the graph: practice over DDS, then goal images reached.

Several processes on one isolated ROS_DOMAIN_ID, driven by `rig_ros.run.session` as `rig
practice --steps` drives them:
1. Practice: the practice graph (sim, camera pipeline, encoder, policy, goal scheduler,
   learner) runs a few hundred steps; the learner stores them, trains, and its weights
   reach the policy (the policy's transitions carry the version it acted with).
2. Reach: the reach graph serves a policy this test trained in process (a tiny core.pipeline
   run: small collection, VAE and RL); goal images of goals far from the start, sent on
   `rig/goal_image`, bring the hand clearly closer.
Every wait is bounded (the session's timeouts).
"""

import pathlib

import numpy as np
import pytest

from rig_ros.core.pipeline import evaluation_goals, PipelineConfig, RigPipeline
from rig_ros.core.td3 import TD3Config
from rig_ros.run.session import Session, SessionConfig
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

PRACTICE_STEPS = 300
FAR_GOALS = 5


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Train a small RIG model in process; return its run directory."""
    config = PipelineConfig(
        task='reacher', seed=0, collect_images=300, vae_steps=300, rl_steps=1200,
        td3=TD3Config(learning_starts=300, updates_per_step=6, hidden_sizes=(64, 64)),
        eval_every=1000, checkpoint_every=1000, eval_goals=1)
    run_dir = tmp_path_factory.mktemp('rig_trained')
    sim = SawyerSim(SawyerSimConfig(task='reacher', seed=0))
    try:
        RigPipeline(sim, config, run_dir, progress=False, log=lambda text: None).run()
    finally:
        sim.close()
    return run_dir


def far_goals(count: int) -> np.ndarray:
    """Return the evaluation goals farthest from the hand's start."""
    sim = SawyerSim(SawyerSimConfig(task='reacher', seed=0))
    try:
        sim.reset()
        start = sim.state_vector()[:2]
        goals = evaluation_goals(sim, 20, seed=0)
    finally:
        sim.close()
    distances = np.linalg.norm(goals[:, :2] - start, axis=1)
    return goals[np.argsort(distances)[-count:]]


@pytest.mark.multiprocess
def test_practice_through_the_graph_then_goal_images_are_reached(
        ros_domain_id, trained_run, tmp_path):
    user_params = tmp_path / 'small.yaml'
    user_params.write_text(
        '/**/learner:\n  ros__parameters:\n    td3: {hidden_sizes: [64, 64]}\n')
    config = SessionConfig(
        steps=PRACTICE_STEPS, vae_checkpoint=str(trained_run / 'vae.safetensors'),
        learning_starts=100, updates_per_step=1, batch_size=32, broadcast_every=25,
        params_file=str(user_params), startup_timeout_s=90.0, stall_timeout_s=30.0,
        catch_up_timeout_s=90.0)
    session = Session(config, tmp_path / 'session', progress=False)
    params_file = session.params_file(config.vae_checkpoint)

    status = session.practise(PRACTICE_STEPS, params_file)
    # The learner may miss the first few steps (sent before it subscribed).
    assert status['received'] >= PRACTICE_STEPS - 30, status
    assert status['stored'] >= status['received'] - config.episode_length, status
    owed = config.updates_per_step * (status['stored'] - config.learning_starts + 1)
    assert status['updates'] >= owed > 0, status
    assert status['weights_version'] >= 2, status
    assert max(session.policy_versions) >= 1, session.policy_versions  # weights reached it
    assert (tmp_path / 'session' / 'learner.safetensors').is_file()

    results = session.evaluate(str(trained_run), params_file, far_goals(FAR_GOALS))
    initial = np.array([r['initial_hand_distance'] for r in results])
    final = np.array([r['hand_distance'] for r in results])
    assert (initial > 0.12).all(), initial
    ratios = final / initial
    assert (ratios < 0.6).sum() >= 3, f'initial {initial}, final {final}'
    assert np.median(ratios) < 0.5, f'initial {initial}, final {final}'
