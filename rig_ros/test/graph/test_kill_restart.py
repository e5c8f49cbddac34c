"""Kill drills on the reacher practice graph: SIGKILL one node mid-practice, restart it.

(a) learner: every transition of every episode it received and finished survives (episode
    files), training goes on from the checkpoint; (b) vae_encoder: the policy stops the robot
    (stale latents) and practice resumes after the restart; (c) policy: the real-time sim's
    watchdog stops the hand, practice resumes after the restart. Small budgets, an untrained
    VAE (the `vae_checkpoint` fixture).
"""

import json
import pathlib
import re
import time
from typing import Callable

from geometry_msgs.msg import PointStamped, TwistStamped
from harness import (kill, latest_status, outputs, saved_rows, Stamped,
                     start_practice_nodes, wait_for)
import numpy as np
import pytest
from std_msgs.msg import String

from rig_msgs.msg import Transition
from rig_ros.core import checkpoints
from rig_ros.core.learner import CHECKPOINT_FILE, EPISODES_DIR
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, TRANSITION_QOS

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

EPISODE_LENGTH = 8
LEARNER = {'td3.hidden_sizes': [32, 32], 'td3.batch_size': 16, 'td3.learning_starts': 16,
           'td3.updates_per_step': 1, 'broadcast_every': 16, 'checkpoint_every': 24,
           'status_period_s': 0.3}


def start_graph(start_node: Callable, run_dir: pathlib.Path, lockstep: bool,
                vae_checkpoint: pathlib.Path) -> dict:
    """Start the reacher practice graph node by node with the drills' small budgets."""
    vae = str(vae_checkpoint)
    return start_practice_nodes(start_node, run_dir, lockstep, {
        'vae_encoder': {'vae_checkpoint': vae, 'reconstruction_period_s': 0.0},
        'goal_scheduler': {'vae_checkpoint': vae, 'episode_length': EPISODE_LENGTH,
                           'episode_timeout_s': 15.0},
        'learner': {**LEARNER, 'vae_checkpoint': vae},
        'policy': {'stale_after_s': 0.2},
    })


def test_learner_sigkill_loses_no_finished_episode(ros, start_node, tmp_path, vae_checkpoint):
    began = time.monotonic()
    run_dir = tmp_path / 'run'
    nodes = start_graph(start_node, run_dir, lockstep=True, vae_checkpoint=vae_checkpoint)
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    sent = Stamped()
    ros.node.create_subscription(Transition, '/rig/transition', sent.callback, TRANSITION_QOS)
    learner = nodes['learner'][1]
    # Past a checkpoint, and some episodes after it (only in episode files).
    assert wait_for(lambda: (run_dir / CHECKPOINT_FILE).is_file()
                    and latest_status(status).get('stored', 0) >= 64, timeout=90.0), (
        latest_status(status), outputs(nodes))
    # Transitions published before the learner's subscription matched never reached it (the
    # topic is volatile; this test's own subscriber may have matched earlier): count only the
    # episodes after the one the learner was in at its first status with robot_0's data.
    first_seen = next(report['robots']['robot_0']['episode_id'] for report in (
        json.loads(m.data) for m in status.messages) if 'robot_0' in report.get('robots', {}))
    # That first status can come late on a busy learner: wait for episodes after it.
    assert wait_for(lambda: latest_status(status)['robots']['robot_0']['episode_id']
                    >= first_seen + 4, timeout=60.0), (first_seen, latest_status(status))
    # Kill right after a status: the episodes before the learner's current one are stored.
    count = len(status.messages)
    assert wait_for(lambda: len(status.messages) > count, timeout=10.0)
    current = latest_status(status)['robots']['robot_0']['episode_id']
    kill(learner)
    finished = {(m.robot_id, m.episode_id) for _, m in sent.since(0)
                if m.episode_end and first_seen < m.episode_id < current}
    assert len(finished) >= 3, (first_seen, current)
    expected = {np.asarray(m.observation, np.float32).tobytes() for _, m in sent.since(0)
                if (m.robot_id, m.episode_id) in finished}
    rows = saved_rows(run_dir)
    missing = expected - rows
    assert not missing, f'{len(missing)} of {len(expected)} transitions of finished episodes lost'
    saved = checkpoints.load_checkpoint(run_dir / CHECKPOINT_FILE)
    updates = saved.metadata['updates']
    episode_files = len(list((run_dir / EPISODES_DIR).glob('*.npz')))

    again = start_node('learner', name='learner', namespace='/',
                       parameters={**nodes['learner'][0].parameters, **LEARNER,
                                   'vae_checkpoint': str(vae_checkpoint)},
                       param_files=nodes['learner'][0].param_files)
    assert wait_for(lambda: 'resumed' in again.output, timeout=30.0), again.output
    resumed = [line for line in again.output.splitlines() if 'resumed' in line][0]
    assert f'{updates} updates' in resumed, (resumed, updates)
    # '...; stage practise (resumed); N transitions stored, M updates; ...'
    stored_at_resume = int(re.search(r'(\d+) transitions stored', resumed).group(1))
    assert stored_at_resume >= len(expected), (resumed, len(expected))
    # Training continues from the checkpoint's counter, on new transitions.
    assert wait_for(lambda: latest_status(status).get('updates', 0) > updates
                    and latest_status(status).get('stored', 0) > stored_at_resume,
                    timeout=40.0), (latest_status(status), again.output[-2000:])
    assert list((run_dir / 'tensorboard').glob('events.out.tfevents.*'))
    assert 'Traceback' not in again.output
    print(f'\nlearner drill: {len(finished)} finished episodes ({len(expected)} transitions) '
          f'kept, {episode_files} episode files after the checkpoint at {updates} updates; '
          f'{time.monotonic() - began:.1f} s')


def moving(commands: list) -> bool:
    return any(m.twist.linear.x or m.twist.linear.y for _, m in commands)


@pytest.mark.parametrize('victim', ['vae_encoder', 'policy'])
def test_kill_and_restart_stops_the_robot_then_practice_resumes(ros, start_node, tmp_path,
                                                                vae_checkpoint, victim):
    began = time.monotonic()
    nodes = start_graph(start_node, tmp_path / 'run', lockstep=False,
                        vae_checkpoint=vae_checkpoint)
    commands, states, sent = Stamped(), Stamped(), Stamped()
    ros.node.create_subscription(TwistStamped, '/robot_0/ee_velocity', commands.callback,
                                 COMMAND_QOS)
    ros.node.create_subscription(PointStamped, '/robot_0/robot/state', states.callback,
                                 COMMAND_QOS)
    ros.node.create_subscription(Transition, '/rig/transition', sent.callback, TRANSITION_QOS)
    assert wait_for(lambda: len(sent.since(0)) >= 2 * EPISODE_LENGTH, timeout=90.0), (
        outputs(nodes))
    assert moving(commands.since(time.monotonic() - 2.0)), outputs(nodes)
    killed_at = kill(nodes[victim][1])
    time.sleep(1.5)
    if victim == 'vae_encoder':
        # Stale latents (0.2 s) plus at most one control period (0.1 s): zero within 0.3 s.
        after = commands.since(killed_at)
        last_move = max((t for t, m in after if m.twist.linear.x or m.twist.linear.y),
                        default=killed_at)
        stopped_s = last_move - killed_at
        assert after and stopped_s <= 0.3, (stopped_s, outputs(nodes))
        assert not moving(commands.since(killed_at + 0.3))
    else:
        # No commands at all: the real-time sim's watchdog (0.2 s) holds the hand.
        hand = [(m.point.x, m.point.y) for _, m in states.since(killed_at + 0.3)]
        assert len(hand) >= 5 and np.ptp(np.array(hand), axis=0).max() < 1e-3, hand
        stopped_s = 0.3
    restarted_at = time.monotonic()
    nodes[victim][1] = nodes[victim][2]()
    assert wait_for(lambda: sum(m.robot_id == 'robot_0' for _, m in sent.since(restarted_at))
                    >= EPISODE_LENGTH, timeout=40.0), outputs(nodes)
    assert moving(commands.since(restarted_at))
    assert 'Traceback' not in outputs(nodes)
    print(f'\n{victim} drill: last non-zero command {stopped_s:.2f} s after the kill, practice '
          f'resumed {time.monotonic() - restarted_at:.1f} s after the restart; '
          f'{time.monotonic() - began:.1f} s')
