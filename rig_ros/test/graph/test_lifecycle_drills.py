"""Kill drills of the run's lifecycle on the lockstep reacher practice graph (issue 11).

The graph starts from an EMPTY run directory with no vae_checkpoint anywhere: the learner
explores (the schedulers start exploration episodes, the policies act at random on frames),
pretrains its VAE on the kept frames, broadcasts it (model 'vae', version 1) and practises.
Small budgets throughout. Each test SIGKILLs the learner in one stage and restarts it:
(a) explore: every frame in run_dir/frames before the kill is kept by the restart (its resume
    line), and the run goes on to pretrain;
(b) pretrain: killed after a VAE pretraining checkpoint, the restart resumes from that
    checkpoint's step (not 0) with every frame kept; practice then starts: the VAE goes out
    and practice transitions of VAE version 1 are sent;
(c) practise: every finished practice episode is still stored after the restart, the stage
    stays 'practise' (stage.json: no second exploration or pretraining), training goes on.
Every test: the learners logged the stages in order and the status topic never went back a
stage, the hand (robot/state) stays inside the sim's workspace box, no traceback in any output.
Waits on a stage shorter than DDS discovery (exploration ends within seconds of the start)
read the learner's own logs, not the topics.
"""

import json
import pathlib
import re
import time
from typing import Any, Callable, Optional

from geometry_msgs.msg import PointStamped
from harness import (kill, latest_status, outputs, saved_rows, Stamped,
                     start_practice_nodes, wait_for)
import numpy as np
import pytest
from std_msgs.msg import String

from rig_msgs.msg import Transition, Weights
from rig_ros.core import checkpoints
from rig_ros.core.encoder import VAE_CHECKPOINT_FILE
from rig_ros.core.frames import FRAMES_DIR
from rig_ros.core.learner import CHECKPOINT_FILE
from rig_ros.core.lifecycle import STAGE_FILE
from rig_ros.core.vae_training import PRETRAIN_CHECKPOINT_FILE
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, TRANSITION_QOS, WEIGHTS_QOS
from rig_ros.tasks import task

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

EPISODE_LENGTH = 10
EXPLORE_FRAMES = 150
VAE_STEPS = 100  # five work() chunks of 20: time to kill between a checkpoint and the end
VAE_CHECKPOINT_EVERY = 20
LEARNER = {'td3.hidden_sizes': [32, 32], 'td3.batch_size': 16, 'td3.learning_starts': 16,
           'td3.updates_per_step': 1, 'broadcast_every': 16, 'checkpoint_every': 24,
           'status_period_s': 0.3, 'explore_frames': EXPLORE_FRAMES, 'vae_steps': VAE_STEPS,
           'vae.batch_size': 16, 'vae_checkpoint_every': VAE_CHECKPOINT_EVERY,
           'frame_chunk_frames': 16, 'frame_flush_period_s': 0.5,
           'reconstruction_period_s': 0.0}
STAGES = ['explore', 'pretrain', 'practise']
# The learner's stage log lines: '[INFO] [...] [learner]: <wall time> stage <stage>: ...'.
LOGGED_STAGE = re.compile(r'\]: \S+ stage (explore|pretrain|practise)\b')
# Its status log lines: '[INFO] [...] [learner]: status <the status JSON>'.
LOGGED_STATUS = re.compile(r'\]: status (\{.*\})$', re.MULTILINE)
HAND_SLACK_M = 0.01  # the hand follows its target, which the sim clips to the box
START_TIMEOUT_S = 60.0  # six processes importing torch on a loaded 2-core machine
STAGE_TIMEOUT_S = 60.0


def start_graph(start_node: Callable, run_dir: pathlib.Path) -> dict:
    """Start the lockstep reacher practice graph node by node, with no VAE given."""
    return start_practice_nodes(start_node, run_dir, True, {
        'vae_encoder': {'reconstruction_period_s': 0.0},
        'goal_scheduler': {'episode_length': EPISODE_LENGTH, 'episode_timeout_s': 15.0},
        'learner': LEARNER,
    })


def statuses(collector: Any) -> list[dict]:
    return [json.loads(m.data) for m in collector.messages]


def stages_seen(collector: Any) -> list[str]:
    """Return the stages of the status messages, each once, in the order first seen."""
    seen: list[str] = []
    for report in statuses(collector):
        stage = report.get('stage')
        if stage and stage not in seen:
            seen.append(stage)
    return seen


def stages_logged(learners: list[Any]) -> list[str]:
    """Return the stages the learner processes logged (start and each change), each once."""
    seen: list[str] = []
    for learner in learners:
        for stage in LOGGED_STAGE.findall(learner.output):
            if stage not in seen:
                seen.append(stage)
    return seen


def logged_statuses(learner: Any) -> list[dict]:
    """Return the statuses the learner process logged, oldest first.

    The gates of the explore drill read these, not the status topic: exploration is over
    within seconds of the learner's start, and this test's subscription has matched the learner
    only after it (discovery took up to 7 s on this machine).
    """
    return [json.loads(text) for text in LOGGED_STATUS.findall(learner.output)]


def stage_is(collector: Any, stage: str) -> bool:
    return latest_status(collector).get('stage') == stage


def chunk_frames(run_dir: pathlib.Path) -> int:
    """Return the frames in the frame store's chunk files (what a kill cannot lose)."""
    total = 0
    for file in (run_dir / FRAMES_DIR).glob('*.npz'):
        with np.load(file) as data:
            total += len(data['images'])
    return total


def resume_line(node: Any) -> Optional[str]:
    """Return the restarted learner's line saying what it resumed, None before it logs it."""
    return next((line for line in node.output.splitlines() if '(resumed)' in line), None)


def kept_frames(line: str) -> int:
    match = re.search(r'(\d+) exploration frames kept', line)
    assert match, line
    return int(match.group(1))


def restart_learner(nodes: dict) -> Any:
    nodes['learner'][1] = nodes['learner'][2]()
    learner = nodes['learner'][1]
    assert wait_for(lambda: resume_line(learner) is not None, timeout=START_TIMEOUT_S), (
        learner.output)
    return learner


def assert_hand_in_workspace(states: Stamped) -> int:
    """Check every hand position published so far lies in the reacher's box; return how many."""
    spec = task('reacher')
    hand = np.array([(m.point.x, m.point.y) for _, m in states.since(0)])
    assert len(hand), 'no robot/state'
    low = np.array(spec.workspace_low) - HAND_SLACK_M
    high = np.array(spec.workspace_high) + HAND_SLACK_M
    assert np.all(hand >= low) and np.all(hand <= high), (hand.min(axis=0), hand.max(axis=0))
    return len(hand)


def assert_drill_clean(status: Any, states: Stamped, nodes: dict, learners: list[Any],
                       all_stages: bool = True) -> int:
    """Check stage order, the hand's box and the outputs; return the hand states checked.

    The learner processes (the killed one, then its restart) logged the stages in order (all
    of them unless `all_stages` is false) and the status topic never went back a stage (its
    first stages may come before this test's subscription matched the learner: discovery has
    taken over 6 s on this machine), the hand stayed in its box, no node printed a traceback.
    """
    logged = stages_logged(learners)
    assert logged == (STAGES if all_stages else STAGES[:len(logged)]), logged
    published = stages_seen(status)
    assert published and published == [stage for stage in STAGES if stage in published], (
        published)
    hand_states = assert_hand_in_workspace(states)
    assert 'Traceback' not in outputs(nodes)
    return hand_states


def watch(ros: Any) -> tuple[Any, Stamped, Stamped, Any]:
    """Subscribe to the status, the transitions, robot_0's hand and the weights."""
    status = ros.collect(String, '/rig/learner_status', LATCHED_QOS)
    sent, states = Stamped(), Stamped()
    ros.node.create_subscription(Transition, '/rig/transition', sent.callback, TRANSITION_QOS)
    ros.node.create_subscription(PointStamped, '/robot_0/robot/state', states.callback,
                                 COMMAND_QOS)
    weights = ros.collect(Weights, '/rig/weights', WEIGHTS_QOS)
    return status, sent, states, weights


def test_learner_sigkill_while_exploring_keeps_every_written_frame(ros, start_node, tmp_path):
    began = time.monotonic()
    run_dir = tmp_path / 'run'
    status, sent, states, _ = watch(ros)
    nodes = start_graph(start_node, run_dir)
    killed_learner = nodes['learner'][1]

    def exploring() -> dict:
        logged = logged_statuses(killed_learner)
        return logged[-1] if logged and logged[-1].get('stage') == 'explore' else {}

    # Mid-exploration, with some chunks written.
    assert wait_for(lambda: exploring().get('frames', 0) >= EXPLORE_FRAMES // 3
                    and chunk_frames(run_dir) >= 16, timeout=START_TIMEOUT_S + STAGE_TIMEOUT_S,
                    interval=0.01), (logged_statuses(killed_learner)[-1:], outputs(nodes))
    explored_s = time.monotonic() - began
    reported = exploring().get('frames', 0)
    kill(killed_learner)
    assert reported, 'exploration ended before the kill'
    on_disk = chunk_frames(run_dir)
    assert 0 < on_disk < EXPLORE_FRAMES, on_disk
    # A kill loses only frames waiting for their chunk: fewer than frame_chunk_frames.
    assert reported - on_disk < LEARNER['frame_chunk_frames'], (reported, on_disk)
    assert json.loads((run_dir / STAGE_FILE).read_text())['stage'] == 'explore'

    learner = restart_learner(nodes)
    line = resume_line(learner)
    assert 'stage explore (resumed)' in line, line
    assert kept_frames(line) == on_disk, (line, on_disk)
    # Exploration goes on (the schedulers never stopped) to the budget, then pretraining.
    assert wait_for(lambda: 'pretrain' in stages_logged([learner]), timeout=STAGE_TIMEOUT_S), (
        learner.output[-3000:])
    restarted = logged_statuses(learner)
    assert restarted[0]['stage'] == 'explore' and restarted[0]['frames'] >= on_disk, restarted[0]
    assert chunk_frames(run_dir) >= EXPLORE_FRAMES
    # The topics: the restart's statuses arrive, and exploration transitions were sent.
    assert wait_for(lambda: latest_status(status).get('stage') in ('pretrain', 'practise'),
                    timeout=STAGE_TIMEOUT_S), (latest_status(status), outputs(nodes))
    assert sum(m.vae_version == 0 and not m.observation for _, m in sent.since(0)) > 0
    hand_states = assert_drill_clean(status, states, nodes, [killed_learner, learner],
                                     all_stages=False)
    print(f'\nexplore drill: killed at {on_disk} frames on disk ({explored_s:.1f} s), '
          f'restart kept {kept_frames(line)}, pretraining from {chunk_frames(run_dir)} frames; '
          f'{hand_states} hand states in the box; {time.monotonic() - began:.1f} s')


def test_learner_sigkill_while_pretraining_resumes_the_vae_step(ros, start_node, tmp_path):
    began = time.monotonic()
    run_dir = tmp_path / 'run'
    nodes = start_graph(start_node, run_dir)
    status, sent, states, weights = watch(ros)
    checkpoint = run_dir / PRETRAIN_CHECKPOINT_FILE
    assert wait_for(checkpoint.is_file, timeout=START_TIMEOUT_S + STAGE_TIMEOUT_S,
                    interval=0.02), (latest_status(status), outputs(nodes))
    killed_learner = nodes['learner'][1]
    kill(killed_learner)
    pretrain_at_s = time.monotonic() - began
    # What the restart will read: the checkpoint on disk after the kill.
    step = checkpoints.load_checkpoint(checkpoint).metadata['step']
    assert 0 < step < VAE_STEPS and step % VAE_CHECKPOINT_EVERY == 0, step
    assert json.loads((run_dir / STAGE_FILE).read_text())['stage'] == 'pretrain'
    assert not (run_dir / VAE_CHECKPOINT_FILE).exists()
    frames = chunk_frames(run_dir)
    assert frames >= EXPLORE_FRAMES
    assert not any(m.model_name == 'vae' for m in weights.messages)

    restarted = time.monotonic()
    learner = restart_learner(nodes)
    line = resume_line(learner)
    assert 'stage pretrain (resumed)' in line, line
    assert kept_frames(line) == frames, (line, frames)
    assert f'VAE pretraining at step {step}/{VAE_STEPS}' in line, (line, step)
    # Practice: VAE version 1 goes out; practice transitions made with it reach the learner.
    assert wait_for(lambda: any(m.model_name == 'vae' for m in weights.messages),
                    timeout=STAGE_TIMEOUT_S), (latest_status(status), outputs(nodes))
    assert [m.version for m in weights.messages if m.model_name == 'vae'] == [1]

    def practice_sent() -> list:
        return [m for t, m in sent.since(restarted) if m.vae_version == 1]

    assert wait_for(lambda: len(practice_sent()) >= EPISODE_LENGTH and latest_status(status).get(
        'practice_received', 0) > 0, timeout=STAGE_TIMEOUT_S), (
        latest_status(status), outputs(nodes))
    assert all(m.next_vae_version == 1 and len(m.observation) == 4 for m in practice_sent())
    final = latest_status(status)
    assert final['stage'] == 'practise' and final['vae_version'] == 1, final
    assert final['replay_seeded'] and final['frames'] == frames, final
    hand_states = assert_drill_clean(status, states, nodes, [killed_learner, learner])
    print(f'\npretrain drill: killed {pretrain_at_s:.1f} s in with the VAE checkpoint at step '
          f'{step}/{VAE_STEPS}, resumed there with {frames} frames; {len(practice_sent())} '
          f'practice transitions of VAE version 1; {hand_states} hand states in the box; '
          f'{time.monotonic() - began:.1f} s')


def test_learner_sigkill_while_practising_stays_in_practice(ros, start_node, tmp_path):
    began = time.monotonic()
    run_dir = tmp_path / 'run'
    nodes = start_graph(start_node, run_dir)
    status, sent, states, _ = watch(ros)
    assert wait_for(lambda: stage_is(status, 'practise'),
                    timeout=START_TIMEOUT_S + 2 * STAGE_TIMEOUT_S), (latest_status(status),
                                                                     outputs(nodes))
    practise_at_s = time.monotonic() - began
    seeded = latest_status(status).get('stored', 0)
    # Past a checkpoint and some practice episodes after it.
    assert wait_for(lambda: (run_dir / CHECKPOINT_FILE).is_file() and latest_status(status).get(
        'practice_received', 0) >= 4 * EPISODE_LENGTH, timeout=STAGE_TIMEOUT_S), (
        latest_status(status), outputs(nodes))
    # Kill right after a status: the episodes before the learner's current one are stored.
    count = len(status.messages)
    assert wait_for(lambda: len(status.messages) > count, timeout=10.0)
    current = latest_status(status)['robots']['robot_0']['episode_id']
    stage_record = json.loads((run_dir / STAGE_FILE).read_text())
    killed_learner = nodes['learner'][1]
    kill(killed_learner)
    # Only episodes the learner saw from their first step (see test_kill_restart).
    first_seen = next(report['robots']['robot_0']['episode_id'] for report in statuses(status)
                      if 'robot_0' in report.get('robots', {}))
    finished = {(m.robot_id, m.episode_id) for _, m in sent.since(0)
                if m.episode_end and m.vae_version == 1 and first_seen < m.episode_id < current}
    assert len(finished) >= 2, (first_seen, current)
    expected = {np.asarray(m.observation, np.float32).tobytes() for _, m in sent.since(0)
                if (m.robot_id, m.episode_id) in finished}
    missing = expected - saved_rows(run_dir)
    assert not missing, f'{len(missing)} of {len(expected)} transitions of finished episodes lost'
    updates = checkpoints.load_checkpoint(run_dir / CHECKPOINT_FILE).metadata['updates']

    killed = len(status.messages)
    learner = restart_learner(nodes)
    line = resume_line(learner)
    assert 'stage practise (resumed)' in line and 'VAE version 1' in line, line
    stored_at_resume = int(re.search(r'(\d+) transitions stored', line).group(1))
    assert stored_at_resume >= seeded + len(expected), (line, seeded, len(expected))
    assert wait_for(lambda: len(status.messages) > killed and latest_status(status).get(
        'updates', 0) > updates and latest_status(status).get('stored', 0) > stored_at_resume,
        timeout=STAGE_TIMEOUT_S), (latest_status(status), learner.output[-3000:])
    assert {report.get('stage') for report in statuses(status)[killed:]} == {'practise'}
    assert 'stage explore' not in learner.output and 'stage pretrain' not in learner.output
    assert 'VAE pretrained' not in learner.output
    record = json.loads((run_dir / STAGE_FILE).read_text())
    assert record['stage'] == 'practise' and record['began'] == stage_record['began'], (
        record, stage_record)
    hand_states = assert_drill_clean(status, states, nodes, [killed_learner, learner])
    print(f'\npractise drill: practice from {practise_at_s:.1f} s ({seeded} exploration '
          f'transitions seeded), {len(finished)} finished episodes ({len(expected)} '
          f'transitions) kept, restart at {stored_at_resume} stored, {updates} updates; '
          f'{hand_states} hand states in the box; {time.monotonic() - began:.1f} s')
