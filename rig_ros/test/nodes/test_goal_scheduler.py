"""goal_scheduler as a separate process, against stub reset and encode servers in the test."""

import json
import signal
import threading
import time

from factories import untrained_vae
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_msgs.srv import Encode
from rig_ros.core.encoder import LatentEncoder, vae_weights_payload
from rig_ros.core.goals import GoalSchedulerConfig
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.interfaces.qos import ARM_QOS, LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS

NAMESPACE = '/robot_0'
FLEET = (('rig/weights', '/rig/weights'), ('rig/transition', '/rig/transition'),
         ('rig/learner_status', '/rig/learner_status'))


class StubServer:
    """A service in the test: counts calls, answers from `respond(request, response)`."""

    def __init__(self, ros, srv_type, name, respond) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()
        self._respond = respond
        self._service = ros.node.create_service(srv_type, name, self._callback)

    def _callback(self, request, response):
        with self._lock:
            self.calls.append(time.time())
            index = len(self.calls)
        return self._respond(index, request, response)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)


def reset_fails_first(index, request, response):
    response.success = index > 1
    response.message = 'ok' if response.success else 'arm not enabled'
    return response


def reset_succeeds(index, request, response):
    response.success, response.message = True, 'ok'
    return response


def end_of(robot_id: str, episode_id: int, end: bool = True) -> Transition:
    return Transition(robot_id=robot_id, episode_id=episode_id, step_index=4, episode_end=end)


def learner_status(stage: str, waiting_for: str, progress: float) -> String:
    return String(data=json.dumps({'stage': stage, 'waiting_for': waiting_for,
                                   'progress': progress, 'frames': 0}))


@pytest.mark.multiprocess
def test_practice_resets_per_episode_and_goal_images_switch_to_reach(
        ros, start_node, wait_for, vae_checkpoint):
    encoder = LatentEncoder()
    encoder.load_checkpoint(vae_checkpoint)
    resets = StubServer(ros, Trigger, f'{NAMESPACE}/robot/reset', reset_fails_first)

    def encode(index, request, response):
        if request.image.encoding != 'rgb8':
            response.success, response.message = False, 'unsupported image encoding'
        else:
            response.success, response.model_version = True, 9
            response.mean = [1.0, 2.0, 3.0, 4.0]
        return response

    encodes = StubServer(ros, Encode, f'{NAMESPACE}/rig/encode', encode)
    goals = ros.collect(Goal, f'{NAMESPACE}/rig/goal', LATCHED_QOS)
    decoded = ros.collect(Image, f'{NAMESPACE}/rig/goal_image_decoded', LATCHED_QOS)
    node = start_node('goal_scheduler', namespace=NAMESPACE, remappings=FLEET, parameters={
        'vae_checkpoint': str(vae_checkpoint.parent), 'episode_length': 5, 'retry_period_s': 0.2,
        'seed': 7})

    # A failed reset is retried; the first goal follows the successful one.
    assert wait_for(lambda: goals.messages, timeout=30.0), node.output
    assert resets.count == 2 and 'arm not enabled' in node.output
    first = goals.messages[0]
    assert (first.episode_id, first.episode_length, first.source, first.explore) == (
        1, 5, 'prior', True)
    assert len(first.mean) == 4 and first.model_version == 0
    assert Time.from_msg(first.header.stamp).nanoseconds / 1e9 >= resets.calls[1]
    assert wait_for(lambda: decoded.messages), node.output
    image = image_to_array(decoded.messages[0])
    np.testing.assert_array_equal(image, encoder.decode(np.array(first.mean, np.float32)))

    # Only the end of this robot's current episode starts the next one.
    transitions = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(transitions), node.output
    for msg in (end_of('robot_1', 1), end_of('robot_0', 1, end=False), end_of('robot_0', 0),
                end_of('robot_0', 1)):
        transitions.publish(msg)
    assert wait_for(lambda: len(goals.messages) >= 2), node.output
    time.sleep(0.5)  # nothing else may follow
    assert resets.count == 3 and len(goals.messages) == 2
    second = goals.messages[1]
    assert second.episode_id == 2 and second.source == 'prior'
    assert not np.allclose(second.mean, first.mean)

    # A goal image: encoded through rig/encode, reached without exploring or resets.
    user = ros.publisher(Image, f'{NAMESPACE}/rig/goal_image', SENSOR_QOS)
    assert ros.wait_for_subscribers(user), node.output
    bad = array_to_image(np.zeros((30, 40, 3), np.uint8), 'bgr8')
    deadline = time.monotonic() + 20.0
    while encodes.count == 0 and time.monotonic() < deadline:
        user.publish(bad)  # best effort: repeat until one gets through
        wait_for(lambda: encodes.count, timeout=0.3)
    assert wait_for(lambda: 'goal image rejected: unsupported image encoding' in node.output)
    assert len(goals.messages) == 2
    good = array_to_image(np.zeros((30, 40, 3), np.uint8))
    while len(goals.messages) < 3 and time.monotonic() < deadline:
        user.publish(good)
        wait_for(lambda: len(goals.messages) >= 3, timeout=0.3)
    reach = goals.messages[2]
    assert (reach.episode_id, reach.episode_length, reach.source, reach.explore) == (
        3, 5, 'image', False)
    assert list(reach.mean) == [1.0, 2.0, 3.0, 4.0] and reach.model_version == 9
    transitions.publish(end_of('robot_0', 2))
    transitions.publish(end_of('robot_0', 3))
    time.sleep(0.5)
    assert resets.count == 3

    assert node.stop(signal.SIGTERM) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_reach_mode_needs_no_vae_and_never_resets(ros, start_node, wait_for):
    resets = StubServer(ros, Trigger, f'{NAMESPACE}/robot/reset', reset_fails_first)

    def encode(index, request, response):
        response.success, response.mean, response.model_version = True, [0.5, -0.5], 2
        return response

    StubServer(ros, Encode, f'{NAMESPACE}/rig/encode', encode)
    goals = ros.collect(Goal, f'{NAMESPACE}/rig/goal', LATCHED_QOS)
    node = start_node('goal_scheduler', namespace=NAMESPACE, remappings=FLEET,
                      parameters={'goal_source': 'image'})
    user = ros.publisher(Image, f'{NAMESPACE}/rig/goal_image', SENSOR_QOS)
    assert ros.wait_for_subscribers(user), node.output
    image = array_to_image(np.zeros((84, 84, 3), np.uint8))
    deadline = time.monotonic() + 20.0
    while not goals.messages and time.monotonic() < deadline:
        user.publish(image)
        wait_for(lambda: goals.messages, timeout=0.3)
    assert goals.messages, node.output
    goal = goals.messages[-1]
    assert (goal.source, goal.explore, goal.episode_length, list(goal.mean)) == (
        'image', False, GoalSchedulerConfig().episode_length, [0.5, -0.5])
    assert resets.count == 0
    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_exploration_episodes_while_the_learner_explores_then_practice_with_its_vae(
        ros, start_node, wait_for):
    resets = StubServer(ros, Trigger, f'{NAMESPACE}/robot/reset', reset_succeeds)
    goals = ros.collect(Goal, f'{NAMESPACE}/rig/goal', LATCHED_QOS)
    decoded = ros.collect(Image, f'{NAMESPACE}/rig/goal_image_decoded', LATCHED_QOS)
    status = ros.publisher(String, '/rig/learner_status', LATCHED_QOS)
    status.publish(learner_status('explore', 'exploration frames (0/100)', 0.0))  # latched
    node = start_node('goal_scheduler', namespace=NAMESPACE, remappings=FLEET,
                      parameters={'episode_length': 6, 'seed': 7})

    # Stage 'explore', no VAE: a reset, then an exploration goal without latents.
    assert wait_for(lambda: goals.messages, timeout=30.0), node.output
    first = goals.messages[0]
    assert (first.episode_id, first.episode_length, first.source, first.explore,
            first.model_version) == (1, 6, 'explore', True, 0)
    assert len(first.mean) == 0 and resets.count == 1
    assert Time.from_msg(first.header.stamp).nanoseconds / 1e9 >= resets.calls[0]

    # Pretraining: the running episode ends with its last (exploration) transition and no new
    # one starts; the node says what it waits for.
    status.publish(learner_status('pretrain', 'VAE pretraining (30/500 steps)', 0.06))
    assert wait_for(lambda: "learner stage 'pretrain'" in node.output), node.output
    transitions = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(transitions), node.output
    transitions.publish(Transition(robot_id='robot_0', episode_id=1, step_index=5,
                                   episode_end=True, action=[0.3, -1.0]))
    assert wait_for(lambda: "no new episode while the learner is in stage 'pretrain', waiting "
                            'for VAE pretraining (30/500 steps) (6% done)' in node.output), (
        node.output)
    time.sleep(0.5)
    assert resets.count == 1 and len(goals.messages) == 1 and not decoded.messages
    assert 'missing or non-finite' not in node.output  # an exploration step has no latents

    # The learner's VAE: practice with imagined goals, episode ids growing on.
    weights = ros.publisher(Weights, '/rig/weights', LATCHED_QOS)
    config_json, data = vae_weights_payload(untrained_vae())
    weights.publish(Weights(model_name='vae', version=1, config_json=config_json,
                            safetensors=data))
    assert wait_for(lambda: len(goals.messages) >= 2, timeout=20.0), node.output
    second = goals.messages[1]
    assert (second.episode_id, second.source, second.explore, second.model_version) == (
        2, 'prior', True, 1)
    assert len(second.mean) == 4 and resets.count == 2
    assert wait_for(lambda: decoded.messages), node.output
    assert node.stop(signal.SIGTERM) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_no_exploration_outside_the_explore_stage(ros, start_node, wait_for):
    resets = StubServer(ros, Trigger, f'{NAMESPACE}/robot/reset', reset_succeeds)
    goals = ros.collect(Goal, f'{NAMESPACE}/rig/goal', LATCHED_QOS)
    node = start_node('goal_scheduler', namespace=NAMESPACE, remappings=FLEET)
    # No status, no VAE: it says so rather than idling silently.
    assert wait_for(lambda: "or the learner's stage on /rig/learner_status" in node.output), (
        node.output)
    status = ros.publisher(String, '/rig/learner_status', LATCHED_QOS)
    assert ros.wait_for_subscribers(status), node.output
    status.publish(String(data='{"stage": "explore"'))  # malformed: ignored
    assert wait_for(lambda: 'ignored a malformed learner status' in node.output), node.output
    status.publish(learner_status('pretrain', 'VAE pretraining (0/500 steps)', 0.0))
    assert wait_for(lambda: "no new episode while the learner is in stage 'pretrain'"
                    in node.output), node.output
    time.sleep(1.0)
    assert resets.count == 0 and not goals.messages
    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output


def start_frames_scheduler(ros, start_node, wait_for, vae_checkpoint, **parameters):
    """Start a practising scheduler of 'frames' goals; return it, its goals, a latent writer."""
    StubServer(ros, Trigger, f'{NAMESPACE}/robot/reset', reset_succeeds)
    goals = ros.collect(Goal, f'{NAMESPACE}/rig/goal', LATCHED_QOS)
    node = start_node('goal_scheduler', namespace=NAMESPACE, remappings=FLEET, parameters={
        'vae_checkpoint': str(vae_checkpoint.parent), 'episode_length': 5,
        'imagined_goals': 'frames', **parameters})
    assert wait_for(lambda: goals.messages, timeout=30.0), node.output
    latents = ros.publisher(LatentState, f'{NAMESPACE}/rig/latent', SENSOR_QOS)
    assert ros.wait_for_subscribers(latents), node.output
    return node, goals, latents


@pytest.mark.multiprocess
def test_frames_goals_are_latents_this_robots_camera_gave(
        ros, start_node, wait_for, vae_checkpoint):
    node, goals, latents = start_frames_scheduler(ros, start_node, wait_for, vae_checkpoint)
    seen = LatentState(mean=[5.0, 6.0, 7.0, 8.0], log_variance=[0.0] * 4, model_version=1)
    for _ in range(10):  # best effort: some get through
        latents.publish(seen)
        time.sleep(0.05)
    transitions = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(transitions), node.output
    transitions.publish(end_of('robot_0', 1))
    assert wait_for(lambda: len(goals.messages) >= 2), node.output
    second = goals.messages[1]
    assert second.source == 'prior' and list(second.mean) == [5.0, 6.0, 7.0, 8.0]
    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_skewed_frames_goals_favour_the_rare_latents_seen(
        ros, start_node, wait_for, vae_checkpoint):
    node, goals, latents = start_frames_scheduler(ros, start_node, wait_for, vae_checkpoint,
                                                  skew_alpha=-1.0)
    for index in range(40):  # one scene in ten is rare, each unlike the others
        mean = [3.0 * (index // 10 + 1), 6.0, 7.0, 8.0] if index % 10 == 0 else [0.0] * 4
        latents.publish(LatentState(mean=mean, log_variance=[0.0] * 4, model_version=1))
        time.sleep(0.02)  # best effort: most get through
    transitions = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(transitions), node.output
    for episode_id in range(1, 9):
        transitions.publish(end_of('robot_0', episode_id))
        assert wait_for(lambda: len(goals.messages) > episode_id), node.output
    rare = [goal.mean[0] for goal in goals.messages[1:] if goal.mean[0] > 0.0]
    # Uniform draws pick a rare latent one time in ten (4 of 8 or more: p < 0.005); skewed
    # by alpha -1 the four rare ones weigh 0.78 together, the 36 common ones 0.22.
    assert len(rare) >= 4, [list(goal.mean) for goal in goals.messages]
    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_hand_box_goals_keep_frames_taken_with_the_hand_in_the_box(
        ros, start_node, wait_for, vae_checkpoint):
    node, goals, latents = start_frames_scheduler(
        ros, start_node, wait_for, vae_checkpoint,
        **{'frame_goals_hand_box.low': [-0.05, 0.55], 'frame_goals_hand_box.high': [0.05, 0.65]})
    states = ros.publisher(PointStamped, f'{NAMESPACE}/robot/state', ARM_QOS)
    assert ros.wait_for_subscribers(states), node.output
    hands = {1: (0.0, 0.6), 2: (0.2, 0.6)}  # frame 1 in the box, frame 2 outside, 3 unknown
    for second, (x, y) in hands.items():
        state = PointStamped()
        state.header.stamp = Time(seconds=second).to_msg()
        state.point.x, state.point.y = x, y
        states.publish(state)
    time.sleep(0.3)  # reliable: the hands arrive before the frames taken with them
    for _ in range(5):  # best effort: some get through
        for second in (1, 2, 3):
            seen = LatentState(mean=[float(second)] * 4, log_variance=[0.0] * 4,
                               model_version=1)
            seen.header.stamp = Time(seconds=second).to_msg()
            latents.publish(seen)
            time.sleep(0.02)
    transitions = ros.publisher(Transition, '/rig/transition', TRANSITION_QOS)
    assert ros.wait_for_subscribers(transitions), node.output
    for episode_id in range(1, 7):
        transitions.publish(end_of('robot_0', episode_id))
        assert wait_for(lambda: len(goals.messages) > episode_id), node.output
    drawn = [list(goal.mean) for goal in goals.messages[1:]]
    # Never the frame outside the box (2) or the one without a hand (3). On a loaded machine
    # the first end of episode may be handled before any latent (an empty pool: a prior draw);
    # from the first in-box goal on, every goal is the in-box frame's.
    assert [1.0] * 4 in drawn, drawn
    first = drawn.index([1.0] * 4)
    assert first <= 2 and drawn[first:] == [[1.0] * 4] * (len(drawn) - first), drawn
    assert not any(goal in ([2.0] * 4, [3.0] * 4) for goal in drawn), drawn
    assert 'frames with the hand in the box kept for goals' in node.output
    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output
