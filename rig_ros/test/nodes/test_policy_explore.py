"""policy as a process across the run's stages: exploring on frames, then practising on latents.

One lockstep policy (act_on_latent) gets an exploration goal and frames on rig/image: one
command and one exploration Transition (frames, no latents) per frame; then a practice goal
and latents stamped like their frames: transitions carry those frames and the latents' VAE
versions.
"""

import time
from typing import Any

from factories import puck_frame, puck_tracker_file
from geometry_msgs.msg import PointStamped, TwistStamped
import numpy as np
import pytest
from sensor_msgs.msg import Image

from rig_msgs.msg import Goal, LatentState, Transition
from rig_ros.core.hands import HandBox
from rig_ros.core.policy_runtime import EpisodeGoal, Frame, PolicyConfig, PolicyRuntime
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.interfaces.qos import (
    ARM_QOS, COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS)

NS = '/robot_0'
DIM = 4
HOLD = 3
MAX_SPEED = 0.2


def value_of(image: Image) -> int:
    """Return the one pixel value of a test frame (they are uniform)."""
    array = image_to_array(image)
    assert image.encoding == 'rgb8' and array.shape == (84, 84, 3), (image.encoding, array.shape)
    assert (array == array.flat[0]).all()
    return int(array.flat[0])


@pytest.mark.multiprocess
def test_explores_on_frames_then_practises_with_frames_and_versions(ros, start_node, wait_for):
    node = start_node('policy', namespace=NS, parameters={
        'act_on_latent': True, 'start_active': True, 'explore_hold_steps': HOLD,
        'max_speed_m_s': MAX_SPEED, 'seed': 3})
    velocities = ros.collect(TwistStamped, f'{NS}/ee_velocity', COMMAND_QOS)
    transitions = ros.collect(Transition, f'{NS}/rig/transition', TRANSITION_QOS)
    frames = ros.publisher(Image, f'{NS}/rig/image', SENSOR_QOS)
    latents = ros.publisher(LatentState, f'{NS}/rig/latent', SENSOR_QOS)
    goals = ros.publisher(Goal, f'{NS}/rig/goal', LATCHED_QOS)
    states = ros.publisher(PointStamped, f'{NS}/robot/state', ARM_QOS)
    for publisher in (frames, latents, goals, states):
        assert ros.wait_for_subscribers(publisher), node.output

    def now() -> Any:
        return ros.node.get_clock().now().to_msg()

    def send_frame(value: int, stamp: Any = None, encoding: str = 'rgb8',
                   size: int = 84) -> Any:
        msg = array_to_image(np.full((size, size, 3), value, np.uint8), encoding)
        msg.header.stamp = stamp if stamp is not None else now()
        frames.publish(msg)
        return msg.header.stamp

    def goal(episode_id: int, source: str, mean: list, length: int) -> Goal:
        msg = Goal(mean=mean, episode_id=episode_id, episode_length=length, explore=True,
                   source=source)
        msg.header.stamp = now()
        return msg

    # Explore: an empty goal; each good frame is one step, actions held HOLD steps.
    goals.publish(goal(1, 'explore', [], 2 * HOLD))
    assert wait_for(lambda: 'episode 1: length 6, exploration' in node.output), node.output
    for value in range(1, 2 * HOLD + 2):  # the last frame closes the last step
        count = len(velocities.messages)
        stamp = now()
        state = PointStamped()  # the hand when the frame was taken: x = value / 100
        state.header.stamp, state.point.x, state.point.y = stamp, value / 100, 0.6
        states.publish(state)
        time.sleep(0.05)
        send_frame(value, stamp)
        wait_for(lambda: len(velocities.messages) > count, timeout=3.0)
    assert wait_for(lambda: len(transitions.messages) >= 2 * HOLD, timeout=5.0), node.output
    explored = transitions.messages
    assert [m.step_index for m in explored] == list(range(2 * HOLD))
    assert [m.episode_end for m in explored] == [False] * (2 * HOLD - 1) + [True]
    for msg in explored:
        assert (msg.robot_id, msg.episode_id) == ('robot_0', 1)
        assert not (len(msg.observation) or len(msg.next_observation) or len(msg.goal))
        assert (msg.vae_version, msg.next_vae_version, msg.policy_version) == (0, 0, 0)
        assert value_of(msg.image) < value_of(msg.next_image)  # frames in order
        # Each frame's hand goes with it.
        np.testing.assert_allclose([msg.hand[0], msg.next_hand[0]],
                                   [value_of(msg.image) / 100, value_of(msg.next_image) / 100])
    for before, after in zip(explored, explored[1:]):
        assert value_of(before.next_image) == value_of(after.image)
    actions = np.array([m.action for m in explored], np.float32)
    assert (np.abs(actions) <= 1.0).all() and np.abs(actions).max() > 0.0
    assert (actions[:HOLD] == actions[0]).all() and (actions[HOLD:] == actions[HOLD]).all()
    assert not np.array_equal(actions[0], actions[HOLD])
    # The commands are those actions at max_speed_m_s, then zeros once the episode is over.
    moving = [(m.twist.linear.x, m.twist.linear.y) for m in velocities.messages
              if m.twist.linear.x or m.twist.linear.y]
    np.testing.assert_allclose(moving, actions * MAX_SPEED, rtol=1e-5)
    last = velocities.messages[-1].twist.linear
    assert (last.x, last.y) == (0.0, 0.0)

    # Malformed frames are logged and ignored: no command, no transition.
    count = len(velocities.messages)
    goals.publish(goal(2, 'explore', [], 0))
    # One zero command: the last frame is older than the new episode.
    assert wait_for(lambda: len(velocities.messages) > count), node.output
    commands_before_bad = len(velocities.messages)
    send_frame(50, encoding='bgr8')
    assert wait_for(lambda: "encoding 'bgr8'" in node.output), node.output
    send_frame(51, size=48)
    assert wait_for(lambda: 'shape (48, 48, 3)' in node.output), node.output
    time.sleep(0.3)
    assert len(velocities.messages) == commands_before_bad
    assert all(m.episode_id == 1 for m in transitions.messages)

    # Practise: latents stamped like their frames, encoded by VAE versions 1 then 2.
    goals.publish(goal(3, 'prior', [0.5] * DIM, 3))
    assert wait_for(lambda: 'episode 3: length 3, exploring' in node.output), node.output
    for value, version, with_frame in ((10, 1, True), (11, 2, True), (12, 2, False)):
        stamp = now()
        if with_frame:
            send_frame(value, stamp)
            time.sleep(0.3)  # the frame first, as camera_pipeline's reaches the encoder
        count = len(velocities.messages)
        latent = LatentState(mean=[0.1 * value] * DIM, model_version=version)
        latent.header.stamp = stamp
        latents.publish(latent)
        assert wait_for(lambda: len(velocities.messages) > count, timeout=5.0), node.output
    assert wait_for(lambda: len(transitions.matching(lambda m: m.episode_id == 3)) >= 2,
                    timeout=5.0), node.output
    first, second = transitions.matching(lambda m: m.episode_id == 3)[:2]
    assert (first.step_index, first.vae_version, first.next_vae_version) == (0, 1, 2)
    assert (value_of(first.image), value_of(first.next_image)) == (10, 11)
    np.testing.assert_allclose(first.next_observation, [1.1] * DIM, rtol=1e-6)
    assert (second.step_index, second.vae_version, second.next_vae_version) == (1, 2, 2)
    assert value_of(second.image) == 11
    assert (second.next_image.height, len(second.next_image.data)) == (0, 0)  # no frame
    assert len(first.hand) == len(first.next_hand) == 0  # no robot/state near those stamps
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_aimed_pushes_steer_towards_the_puck_the_camera_sees(ros, start_node, wait_for,
                                                             tmp_path):
    box = {'low': [-0.2, 0.5], 'high': [0.2, 0.7]}
    tracker = puck_tracker_file(tmp_path)
    node = start_node('policy', namespace=NS, parameters={
        'act_on_latent': True, 'start_active': True, 'explore_hold_steps': 20,
        'max_speed_m_s': MAX_SPEED, 'seed': 3, 'explore_aimed_pushes': 1.0,
        'explore_push_box.low': box['low'], 'explore_push_box.high': box['high'],
        'puck_tracker_file': tracker})
    velocities = ros.collect(TwistStamped, f'{NS}/ee_velocity', COMMAND_QOS)
    frames = ros.publisher(Image, f'{NS}/rig/image', SENSOR_QOS)
    goals = ros.publisher(Goal, f'{NS}/rig/goal', LATCHED_QOS)
    states = ros.publisher(PointStamped, f'{NS}/robot/state', ARM_QOS)
    for publisher in (frames, goals, states):
        assert ros.wait_for_subscribers(publisher), node.output
    msg = Goal(mean=[], episode_id=1, episode_length=20, explore=True, source='explore')
    msg.header.stamp = ros.node.get_clock().now().to_msg()
    goals.publish(msg)
    assert wait_for(lambda: 'episode 1: length 20, exploration' in node.output), node.output
    hand, puck = np.array([0.0, 0.55]), np.array([0.1, 0.6])
    stamp = ros.node.get_clock().now().to_msg()
    state = PointStamped()
    state.header.stamp, state.point.x, state.point.y = stamp, float(hand[0]), float(hand[1])
    states.publish(state)
    time.sleep(0.05)
    image = array_to_image(puck_frame(puck, 84), 'rgb8')
    image.header.stamp = stamp
    frames.publish(image)
    assert wait_for(lambda: velocities.matching(lambda m: m.twist.linear.x or m.twist.linear.y),
                    timeout=5.0), node.output
    command = velocities.matching(lambda m: m.twist.linear.x or m.twist.linear.y)[0].twist.linear
    # The same decision as the runtime's on the same frame and hand: the approach to the puck.
    runtime = PolicyRuntime(PolicyConfig(
        act_on_latent=True, start_active=True, explore_hold_steps=20, seed=3,
        max_speed_m_s=MAX_SPEED, explore_aimed_pushes=1.0,
        explore_push_box=HandBox(tuple(box['low']), tuple(box['high'])),
        puck_tracker_file=tracker))
    runtime.set_goal(EpisodeGoal(np.zeros(0), 1, 20, True, 0.0, 'explore'))
    runtime.set_hand(1.0, hand)
    runtime.set_frame(Frame(puck_frame(puck, 84), 1.0))
    expected = runtime.step(1.0).action * MAX_SPEED
    np.testing.assert_allclose([command.x, command.y], expected, rtol=1e-5)
    assert np.abs(expected).max() == pytest.approx(MAX_SPEED)  # full speed, not a random draw
    assert 'Traceback' not in node.output
