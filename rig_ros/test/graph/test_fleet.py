"""A fleet over DDS: two simulated robots feed one learner; its weights reach both policies.

The practice graph as `rig practice --robots 2 --compose` runs it (GraphRunner, one process
per robot chain, a goal scheduler per robot, one learner), on its own ROS_DOMAIN_ID, with
small settings from a parameter file written here and an untrained VAE checkpoint.
"""

import io
import json
import pathlib
import time
from typing import Iterator

from harness import wait_for
import pytest
from std_msgs.msg import String
import yaml

from rig_msgs.msg import Transition, Weights
from rig_ros import graph
from rig_ros.interfaces.qos import LATCHED_QOS, TRANSITION_QOS, WEIGHTS_QOS
from rig_ros.run.runner import GraphRunner

ROBOTS = ('robot_0', 'robot_1')
DEADLINE_S = 90.0  # start (torch, MuJoCo imports in 5 processes) + practice on a loaded box
pytestmark = pytest.mark.multiprocess


def fleet_params(tmp_path: pathlib.Path, checkpoint: pathlib.Path) -> pathlib.Path:
    """Write a parameter file for a small, fast practice run with VAE `checkpoint`."""
    params = {
        '/**/vae_encoder': {'ros__parameters': {'vae_checkpoint': str(checkpoint)}},
        '/**/goal_scheduler': {'ros__parameters': {
            'vae_checkpoint': str(checkpoint), 'episode_length': 5}},
        '/**/learner': {'ros__parameters': {
            'vae_checkpoint': str(checkpoint), 'replay_capacity': 5000, 'broadcast_every': 10,
            'checkpoint_every': 0,
            'status_period_s': 0.5,
            'td3': {'learning_starts': 10, 'updates_per_step': 1, 'batch_size': 16,
                    'hidden_sizes': [32, 32]}}},
    }
    path = tmp_path / 'fleet.yaml'
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture
def fleet(ros, tmp_path, vae_checkpoint) -> Iterator[tuple[GraphRunner, io.StringIO]]:
    """Start the two-robot practice graph; stop it (cleanly) at the end."""
    params = fleet_params(tmp_path, vae_checkpoint)
    specs = graph.practice_graph(robots=2, params_file=str(params),
                                 run_dir=str(tmp_path / 'run'), compose=True)
    assert sorted(spec.fully_qualified_name for spec in specs) == [
        '/learner', '/robot_0/goal_scheduler', '/robot_0/robot_chain',
        '/robot_1/goal_scheduler', '/robot_1/robot_chain']
    output = io.StringIO()
    runner = GraphRunner(specs, output=output, sigint_timeout=15.0)
    runner.start()
    try:
        yield runner, output
    finally:
        code = runner.stop()
    assert code == 0, output.getvalue()[-5000:]


@pytest.mark.slow
def test_two_robots_feed_one_learner(ros, fleet):
    runner, output = fleet
    began = time.monotonic()
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    weights = ros.collect(Weights, '/rig/weights', WEIGHTS_QOS)
    transitions = ros.collect(Transition, '/rig/transition', TRANSITION_QOS)

    def latest() -> dict:
        messages = status.messages
        return json.loads(messages[-1].data) if messages else {}

    def acted_with_weights() -> set:
        """Robots whose policy sent a transition acted with broadcast weights (version >= 1)."""
        return {m.robot_id for m in transitions.messages if m.policy_version >= 1}

    def done() -> bool:
        robots = latest().get('robots', {})
        return (all(robots.get(robot, {}).get('stored', 0) >= 10 for robot in ROBOTS)
                and latest().get('weights_version', 0) >= 2
                and acted_with_weights() >= set(ROBOTS))

    def report() -> str:
        return f'status {latest()}\n{output.getvalue()[-6000:]}'

    assert wait_for(lambda: done() or runner.wait(timeout=0.0) is not None,
                    timeout=DEADLINE_S, interval=0.2), report()
    assert runner.wait(timeout=0.0) is None, report()  # no node exited
    final = latest()
    for key in ('invalid', 'duplicate', 'out_of_order'):
        assert final[key] == 0, report()
    # Weights versions advance: several 'policy' versions went out, in order.
    versions = [m.version for m in weights.messages if m.model_name == 'policy']
    assert versions and versions == sorted(versions) and versions[-1] >= 2, report()
    # Both policies loaded them (their logs) and acted with them (their transitions).
    lines = output.getvalue().splitlines()
    for robot in ROBOTS:
        assert any(line.startswith(f'[{robot}/robot_chain]') and 'policy weights version' in line
                   and line.endswith('loaded') for line in lines), report()
    assert 'Traceback' not in output.getvalue(), report()
    print(f'fleet: {final["stored"]} transitions stored, weights v{final["weights_version"]} '
          f'after {time.monotonic() - began:.1f} s')
