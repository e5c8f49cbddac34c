"""A pusher practice run's hand-box recipe through the graph, from an empty run directory.

What a robot can do to make its frames look like goal scenes (docs/results.md, issue 12), end
to end over DDS: the sim's resets keep the puck where it was pushed and put the hand in the
task's hand-goal box (`keep_objects`, `hand_to_goal_box`); the policy sends each frame's hand
(robot/state) with its transitions; the learner keeps those hands with its exploration frames
and replay; the goal scheduler and the learner draw their frames' goals only from frames with
the hand in the box (`frame_goals_hand_box`).
"""

import numpy as np
import pytest
import yaml

from rig_ros import tasks
from rig_ros.core.frames import FRAMES_DIR
from rig_ros.core.hands import HandBox
from rig_ros.core.learner import REPLAY_FILE
from rig_ros.run.session import Session, SessionConfig

EXPLORE_FRAMES = 150
STEPS = 400  # exploration included
EPISODE = 25


@pytest.mark.multiprocess
def test_hand_box_practice_keeps_hands_and_draws_goals_in_the_box(ros_domain_id, tmp_path):
    spec = tasks.task('pusher')
    box = {'low': list(spec.hand_goal_low), 'high': list(spec.hand_goal_high)}
    params = tmp_path / 'hand_box.yaml'
    params.write_text(yaml.safe_dump({
        '/**/mujoco_sim': {'ros__parameters': {'keep_objects': True, 'hand_to_goal_box': True}},
        '/**/goal_scheduler': {'ros__parameters': {'frame_goals_hand_box': box}},
        '/**/learner': {'ros__parameters': {'frame_goals_hand_box': box,
                                            'td3': {'hidden_sizes': [32, 32]},
                                            'vae': {'batch_size': 16}}}}))
    config = SessionConfig(
        task='pusher', steps=STEPS, episode_length=EPISODE, explore_frames=EXPLORE_FRAMES,
        vae_steps=20, learning_starts=100, updates_per_step=1, batch_size=16,
        broadcast_every=25, params_file=str(params), startup_timeout_s=120.0,
        stall_timeout_s=60.0, catch_up_timeout_s=120.0)
    run_dir = tmp_path / 'run'
    session = Session(config, run_dir, progress=False)
    status = session.practise(STEPS, session.params_file(''))
    assert status['stage'] == 'practise' and status['practice_received'] > 0, status

    # Every exploration episode starts with the hand in the box (the re-set), and each
    # frame arrived with its hand.
    hand_box = HandBox(tuple(box['low']), tuple(box['high']))
    chunks = sorted((run_dir / FRAMES_DIR).glob('*.npz'))
    hands, steps = [], []
    for chunk in chunks:
        with np.load(chunk) as data:
            hands.append(data['hands'])
            steps.append(data['step'])
    hands, steps = np.concatenate(hands), np.concatenate(steps)
    assert np.isfinite(hands).all(axis=1).mean() > 0.95, np.isnan(hands).any(axis=1).sum()
    starts = hands[steps == 0]
    # (The hand settles within a few millimetres of its target: one near an edge may not.)
    assert len(starts) >= 3 and hand_box.inside(starts).mean() > 0.8, starts

    # The learner's replay keeps the hands; its frames' goals come from the in-box frames.
    session_log = (run_dir / 'graph_practice.log').read_text()
    with np.load(run_dir / REPLAY_FILE) as replay:
        count = min(int(replay['frames']), len(replay['obs']))
        replay_hands = replay['hands'][:count]
    assert np.isfinite(replay_hands).all(axis=1).mean() > 0.9
    assert 0 < hand_box.inside(replay_hands).sum() < count
    assert 'frames with the hand in the box kept for goals' in session_log
    assert 'Traceback' not in session_log, session_log[-3000:]
