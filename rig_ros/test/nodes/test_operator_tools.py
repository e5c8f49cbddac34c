"""Operators' tools: `rig send-goal` reaches a subscriber; `rig report` writes its PNGs."""

import json
import os
import pathlib
import subprocess
import threading

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from rig_ros import cli
from rig_ros.edge.image_msgs import image_to_array
from rig_ros.interfaces.qos import SENSOR_QOS

REPOSITORY = pathlib.Path(__file__).resolve().parents[3]


def test_send_goal_publishes_the_file(ros, wait_for, tmp_path):
    image = np.zeros((37, 91), np.uint8)
    image[10:20, 30:60] = 200
    path = tmp_path / 'goal.png'
    cv2.imwrite(str(path), image)
    received = ros.collect(Image, '/robot_1/rig/goal_image', SENSOR_QOS)
    codes = []
    sender = threading.Thread(target=lambda: codes.append(cli.main(
        ['send-goal', str(path), '--namespace', 'robot_1', '--linger', '0.5'])))
    sender.start()
    assert wait_for(lambda: received.messages, timeout=30.0)
    sender.join(timeout=30.0)
    assert codes == [0]
    msg = received.messages[0]
    assert (msg.width, msg.height, msg.encoding) == (91, 37, 'mono8')
    np.testing.assert_array_equal(image_to_array(msg), image)


@pytest.mark.multiprocess
def test_send_goal_command_in_a_shell_with_env_sh(ros, wait_for, tmp_path):
    """The README's `rig send-goal` in a fresh shell that sourced scripts/env.sh only."""
    image = np.full((24, 32, 3), 90, np.uint8)
    path = tmp_path / 'goal.png'
    cv2.imwrite(str(path), image)
    received = ros.collect(Image, '/robot_0/rig/goal_image', SENSOR_QOS)
    environment = {'PATH': '/usr/bin:/bin', 'HOME': os.environ.get('HOME', str(tmp_path)),
                   'ROS_DOMAIN_ID': str(ros.domain_id),
                   'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    result = subprocess.run(
        ['bash', '-c', '. scripts/env.sh && rig send-goal "$0" --namespace robot_0 '
         '--timeout 30 --linger 0.5', str(path)], cwd=REPOSITORY, env=environment,
        capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f'sent {path} (32x24 bgr8) on /robot_0/rig/goal_image' in result.stdout, result.stdout
    assert wait_for(lambda: received.messages, timeout=10.0)
    assert (received.messages[0].width, received.messages[0].height) == (32, 24)


def test_send_goal_refuses_a_missing_or_unreadable_file(ros_domain_id, tmp_path, capsys):
    assert cli.main(['send-goal', str(tmp_path / 'nope.png')]) == 2
    (tmp_path / 'bad.png').write_bytes(b'not an image')
    assert cli.main(['send-goal', str(tmp_path / 'bad.png')]) == 2
    errors = capsys.readouterr().err
    assert 'no image file' in errors and 'cannot read' in errors


def test_report_writes_curves_and_goal_grid(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter
    curve = [{'rl_step': step, 'rig_success_rate': step / 4000,
              'rig_final_hand_distance_median': 0.1 - step / 50000} for step in (0, 2000, 4000)]
    (tmp_path / 'result.json').write_text(json.dumps({'curve': curve}))
    writer = SummaryWriter(str(tmp_path / 'tensorboard'))
    for step in range(0, 200, 20):
        writer.add_scalar('train/critic_loss', 1.0 / (1 + step), step)
        writer.add_scalar('train/q_mean', -step / 100, step)
        writer.add_scalar('episodes/final_latent_goal_distance', 2.0 - step / 200, step)
    writer.close()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / 'eval_frames.npz',
             goals=rng.integers(0, 255, (5, 84, 84, 3), np.uint8),
             finals=rng.integers(0, 255, (5, 84, 84, 3), np.uint8), rl_step=4000)
    assert cli.main(['report', str(tmp_path)]) == 0
    for name in ('learning_curve.png', 'learner_curves.png', 'goals_vs_reached.png'):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 400, name
        assert str(tmp_path / name) in capsys.readouterr().out or True
    assert cli.main(['report', str(tmp_path / 'empty')]) == 2
