"""Practice heals itself: `rig practice` restarts every node SIGKILLed in turn, with no human step.

The reacher practice graph runs as `rig practice` (the runner, a subprocess; small budgets, an
untrained VAE). Each node is killed with SIGKILL in turn: learner, vae_encoder, policy,
goal_scheduler, camera_pipeline, mujoco_sim. After each kill the runner says what died and
restarts it; practice goes on by itself: transitions reach the learner again and episodes keep
finishing. The learner's kill loses no finished episode it had (episode files), and it resumes
at least at the update count of its last timed checkpoint (`checkpoint_period_s`). A Ctrl-C
then stops the whole graph cleanly.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from harness import latest_status, saved_rows, Stamped, wait_for
import numpy as np
import pytest
from std_msgs.msg import String
import yaml

from rig_msgs.msg import Transition
from rig_ros.core import checkpoints
from rig_ros.core.learner import CHECKPOINT_FILE
from rig_ros.interfaces.qos import LATCHED_QOS, TRANSITION_QOS

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

EPISODE_LENGTH = 8
CHECKPOINT_PERIOD_S = 2.0
VICTIMS = ('learner', 'robot_0/vae_encoder', 'robot_0/policy', 'robot_0/goal_scheduler',
           'robot_0/camera_pipeline', 'robot_0/mujoco_sim')


class Practice:
    """`rig practice` in a subprocess, its output lines kept with their arrival times."""

    def __init__(self, params: str, run_dir: str) -> None:
        self.lines: list[tuple[float, str]] = []
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'rig_ros.cli', 'practice', '--params-file', params,
             '--run-dir', run_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip('\n')))

    def text(self) -> str:
        return '\n'.join(line for _, line in self.lines)

    def line_time(self, pattern: str) -> float:
        """Return the arrival time of the last line matching `pattern` (0.0 if none)."""
        return max((t for t, line in self.lines if re.search(pattern, line)), default=0.0)

    def pid(self, label: str) -> int:
        """Return the pid of the node's current process, from the runner's lines."""
        found = [line for _, line in self.lines if re.match(
            rf'\[runner\] (re)?started {label} \(pid \d+\)$', line)]
        return int(found[-1].split('pid ')[1].rstrip(')')) if found else 0

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10.0)
        self._reader.join(5.0)


def write_params(path, vae_checkpoint) -> str:
    vae = str(vae_checkpoint)
    values = {
        '/**/vae_encoder': {'ros__parameters': {'vae_checkpoint': vae,
                                                'reconstruction_period_s': 0.0}},
        '/**/goal_scheduler': {'ros__parameters': {
            'vae_checkpoint': vae, 'episode_length': EPISODE_LENGTH, 'episode_timeout_s': 15.0}},
        # Timed checkpoints only: the update-count checkpoints never come this soon.
        '/**/learner': {'ros__parameters': {
            'vae_checkpoint': vae, 'checkpoint_every': 0,
            'checkpoint_period_s': CHECKPOINT_PERIOD_S, 'status_period_s': 0.3,
            'broadcast_every': 16,
            'td3': {'hidden_sizes': [32, 32], 'batch_size': 16, 'learning_starts': 16,
                    'updates_per_step': 1}}},
    }
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_every_node_killed_in_turn_is_restarted_and_practice_goes_on(
        ros, tmp_path, vae_checkpoint):
    began = time.monotonic()
    run_dir = tmp_path / 'run'
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    sent = Stamped()
    ros.node.create_subscription(Transition, '/rig/transition', sent.callback, TRANSITION_QOS)
    practice = Practice(write_params(tmp_path / 'drill.yaml', vae_checkpoint), str(run_dir))
    report: dict[str, float] = {}
    try:
        # Practising, and past a timed checkpoint with updates in it.
        # (The file's own update count: the status can show updates before a checkpoint
        # holding them is on disk.)
        assert wait_for(lambda: checkpoint_updates(run_dir) > 0
                        and latest_status(status).get('stored', 0) >= 4 * EPISODE_LENGTH,
                        timeout=120.0), (latest_status(status), practice.text()[-3000:])
        report['practising'] = time.monotonic() - began
        for label in VICTIMS:
            check = check_learner_kill if label == 'learner' else None
            report[label] = kill_and_recover(practice, label, status, sent, run_dir, check)
        assert 'Traceback' not in practice.text(), practice.text()[-3000:]
        # Ctrl-C: every node stops cleanly, nothing is restarted.
        stop_began = time.monotonic()
        practice.process.send_signal(signal.SIGINT)
        assert practice.process.wait(30.0) == 0, practice.text()[-3000:]
        report['stop'] = time.monotonic() - stop_began
    finally:
        practice.close()
    text = practice.text()
    assert text.count('restarting /') == len(VICTIMS), text
    print(f'\ndrill: practising after {report.pop("practising"):.1f} s; recovered (restart '
          'to an episode finished and learned from) ' + ', '.join(
              f'{label.split("/")[-1]} {seconds:.1f} s' for label, seconds in report.items()
              if label != 'stop') + f'; Ctrl-C stop {report["stop"]:.1f} s; '
          f'{time.monotonic() - began:.1f} s in all')


def kill_and_recover(practice: Practice, label: str, status, sent: Stamped, run_dir,
                     check=None) -> float:
    """SIGKILL the node `label`, wait for its restart and for practice to go on.

    Returns the seconds from the restart until an episode finished and the learner took it in.
    """
    pid = practice.pid(label)
    assert pid, practice.text()[-3000:]
    before = latest_status(status)
    os.killpg(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    context = check(status, sent, run_dir, before) if check else None
    restarting = (rf'\[runner\] {label} exited with code -9 \(SIGKILL\); restarting /{label} '
                  r'in 1\.0 s, restart 1$')
    assert wait_for(lambda: practice.line_time(restarting) and practice.pid(label) != pid,
                    timeout=30.0), practice.text()[-3000:]
    restarted_at = practice.line_time(rf'\[runner\] restarted {label} ')
    received_at_restart = latest_status(status).get('received', 0)

    def recovered() -> bool:
        ended = [m for t, m in sent.since(restarted_at) if m.episode_end]
        return bool(ended) and latest_status(status).get('received', 0) >= (
            received_at_restart + 2 * EPISODE_LENGTH)
    assert wait_for(recovered, timeout=90.0), (latest_status(status), practice.text()[-3000:])
    if context is not None:
        context(status, killed_at)
    return time.monotonic() - restarted_at


def checkpoint_updates(run_dir) -> int:
    """Return the update count of the learner's checkpoint on disk (0 while there is none)."""
    if not (run_dir / CHECKPOINT_FILE).is_file():
        return 0
    return int(checkpoints.load_checkpoint(run_dir / CHECKPOINT_FILE).metadata['updates'])


def check_learner_kill(status, sent: Stamped, run_dir, before: dict):
    """At the kill: no finished episode the learner had is lost; return the resume check."""
    saved = checkpoints.load_checkpoint(run_dir / CHECKPOINT_FILE)
    updates = saved.metadata['updates']
    assert updates > 0
    # Episodes before the one the learner was in at its last status were complete in it; those
    # after the first one it saw were whole (the topic is volatile: earlier steps never came).
    reports = [json.loads(m.data) for m in status.messages]
    first_seen = next(r['robots']['robot_0']['episode_id'] for r in reports
                      if 'robot_0' in r.get('robots', {}))
    current = before['robots']['robot_0']['episode_id']
    finished = {(m.robot_id, m.episode_id) for _, m in sent.since(0)
                if m.episode_end and first_seen < m.episode_id < current}
    assert finished, (first_seen, current)
    expected = {np.asarray(m.observation, np.float32).tobytes() for _, m in sent.since(0)
                if (m.robot_id, m.episode_id) in finished}
    missing = expected - saved_rows(run_dir)
    assert not missing, f'{len(missing)} of {len(expected)} transitions of finished episodes lost'

    def resumed_at_least_the_checkpoint(status, killed_at: float) -> None:
        after = [json.loads(m.data) for m in status.messages[len(reports):]]
        assert after and min(r['updates'] for r in after) >= updates, (updates, after[:2])
    return resumed_at_least_the_checkpoint
