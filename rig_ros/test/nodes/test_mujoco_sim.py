"""mujoco_sim as a process: lockstep, idle frames, resets to start or goal, renders, real time."""

import signal
import time

from geometry_msgs.msg import PointStamped, TwistStamped
import numpy as np
import pytest
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from rig_ros.edge.image_msgs import image_to_array

from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, STATE_QOS
from rig_ros.sim.driver import SimDriver, SimDriverConfig
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig

NAMESPACE = '/robot_0'
SIZE = {'image_height': 60, 'image_width': 80}


def topic(name: str) -> str:
    return f'{NAMESPACE}/{name}'


def command(vx: float, vy: float) -> TwistStamped:
    msg = TwistStamped()
    msg.twist.linear.x, msg.twist.linear.y = vx, vy
    return msg


def stamp_s(msg) -> float:
    return Time.from_msg(msg.header.stamp).nanoseconds / 1e9


@pytest.mark.multiprocess
def test_lockstep_reset_idle_frames_nan_and_goal_images(ros, start_node, wait_for):
    node = start_node('mujoco_sim', namespace=NAMESPACE, parameters={
        'task': 'reacher', 'lockstep': True, 'idle_frame_period_s': 0.3,
        'reset_frame_delay_s': 0.1, 'seed': 5, **SIZE})
    frames = ros.collect(Image, topic('camera/image_raw'), SENSOR_QOS)
    truth = ros.collect(Float64MultiArray, topic('sim/ground_truth'), STATE_QOS)
    hands = ros.collect(PointStamped, topic('robot/state'), STATE_QOS)
    goal_images = ros.collect(Image, topic('sim/goal_image'), LATCHED_QOS)
    velocity = ros.publisher(TwistStamped, topic('ee_velocity'), COMMAND_QOS)
    goal_states = ros.publisher(Float64MultiArray, topic('sim/goal_state'), STATE_QOS)
    reset = ros.node.create_client(Trigger, topic('robot/reset'))
    assert reset.wait_for_service(timeout_sec=30.0), node.output
    assert ros.wait_for_subscribers(velocity), node.output

    # Without commands the current frame comes again every idle period (no deadlock).
    assert wait_for(lambda: len(frames.messages) >= 3, timeout=10.0), node.output
    gaps = np.diff([stamp_s(msg) for msg in frames.messages[-3:]])
    assert np.all(gaps >= 0.29) and np.all(gaps < 1.0), gaps
    frame = frames.messages[-1]
    assert (frame.encoding, frame.height, frame.width) == ('rgb8', 60, 80)

    # Reset: answered after a fresh frame, which comes again after reset_frame_delay_s; the
    # hand is at the task's start.
    count = len(frames.messages)
    future = reset.call_async(Trigger.Request())
    assert wait_for(future.done), node.output
    assert future.result().success and future.result().message.endswith('to the start')
    assert wait_for(lambda: len(frames.messages) >= count + 2), node.output
    gap = stamp_s(frames.messages[count + 1]) - stamp_s(frames.messages[count])
    assert 0.09 <= gap < 0.29, gap
    with SawyerSim(SawyerSimConfig(task='reacher', seed=5, **SIZE)) as twin:
        home = twin.state_vector()
        np.testing.assert_allclose(truth.messages[-1].data, home, atol=1e-9)
        hand = hands.messages[-1]
        assert hand.header.frame_id == 'world'
        assert abs(hand.point.x - home[0]) < 1e-9 and abs(hand.point.y - home[1]) < 1e-9

        # One command, one control period: v * 0.1 s (the hand lags its target by ~2 mm),
        # exactly as the core sim steps; then the scene holds still until the next command.
        velocity.publish(command(0.1, -0.05))

        def moved():
            return [msg for msg in truth.messages if not np.allclose(msg.data, home)]

        assert wait_for(moved), node.output
        first = np.array(moved()[0].data)
        np.testing.assert_allclose(first - home, [0.01, -0.005], atol=0.0025)
        twin.step_velocity(np.array([0.1, -0.05]))
        np.testing.assert_allclose(first, twin.state_vector(), atol=1e-9)
        assert wait_for(lambda: len(moved()) >= 2)  # an idle republish
        assert np.array_equal(moved()[-1].data, first)

        # A NaN command is rejected with a log; the node lives on and still steps.
        velocity.publish(command(float('nan'), 0.0))
        assert wait_for(lambda: 'rejected velocity command' in node.output), node.output
        assert node.returncode is None and np.array_equal(truth.messages[-1].data, first)
        velocity.publish(command(0.0, 0.1))
        twin.step_velocity(np.array([0.0, 0.1]))
        assert wait_for(lambda: np.allclose(truth.messages[-1].data, twin.state_vector(),
                                            atol=1e-9)), node.output

        # Goal renders: the scene in a given state, the sim's own state untouched.
        assert ros.wait_for_subscribers(goal_states), node.output
        goal_states.publish(Float64MultiArray(data=[0.1, 0.65]))
        assert wait_for(lambda: goal_images.messages), node.output
        image = image_to_array(goal_images.messages[0])
        expected = twin.render_goal(np.array([0.1, 0.65]))
        assert image.shape == (60, 80, 3)
        assert np.abs(image.astype(int) - expected.astype(int)).mean() < 1.0
        goal_states.publish(Float64MultiArray(data=[5.0, 5.0]))
        assert wait_for(lambda: 'cannot render goal state' in node.output), node.output
        time.sleep(0.4)
        np.testing.assert_allclose(truth.messages[-1].data, twin.state_vector(), atol=1e-9)

    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.multiprocess
def test_real_time_ticks_and_watchdog(ros, start_node, wait_for):
    node = start_node('mujoco_sim', namespace=NAMESPACE, parameters={
        'lockstep': False, 'command_timeout_s': 0.2})
    truth = ros.collect(Float64MultiArray, topic('sim/ground_truth'), STATE_QOS)
    velocity = ros.publisher(TwistStamped, topic('ee_velocity'), COMMAND_QOS)
    assert ros.wait_for_subscribers(velocity), node.output
    assert wait_for(lambda: len(truth.messages) >= 2), node.output
    start, count, began = np.array(truth.messages[-1].data), len(truth.messages), time.monotonic()
    time.sleep(1.0)
    rate = (len(truth.messages) - count) / (time.monotonic() - began)
    assert 5.0 <= rate <= 12.0, rate  # 10 Hz wall clock on a busy machine
    np.testing.assert_allclose(truth.messages[-1].data, start, atol=1e-4)  # zero command

    # One command moves the hand for about command_timeout_s, then the watchdog stops it.
    velocity.publish(command(0.1, 0.0))
    assert wait_for(lambda: truth.messages[-1].data[0] - start[0] > 0.005), node.output
    time.sleep(0.8)
    end = np.array(truth.messages[-1].data)
    assert 0.01 <= end[0] - start[0] <= 0.04, end - start
    time.sleep(0.3)
    assert abs(truth.messages[-1].data[0] - end[0]) < 5e-4
    assert node.stop(signal.SIGTERM) == 0, node.output
    assert 'Traceback' not in node.output


@pytest.mark.parametrize('resets', [{'reset_to_goal_probability': 1.0},
                                    {'keep_objects': True, 'hand_to_goal_box': True}],
                         ids=['to_goal', 'robot_like'])
@pytest.mark.multiprocess
def test_reset_to_a_sampled_goal_state_or_as_a_robot_would(ros, start_node, wait_for, resets):
    parameters = {'task': 'pusher', 'seed': 5, **resets, **SIZE}
    node = start_node('mujoco_sim', namespace=NAMESPACE, parameters=parameters)
    truth = ros.collect(Float64MultiArray, topic('sim/ground_truth'), STATE_QOS)
    reset = ros.node.create_client(Trigger, topic('robot/reset'))
    assert reset.wait_for_service(timeout_sec=30.0), node.output
    future = reset.call_async(Trigger.Request())
    assert wait_for(future.done), node.output
    response = future.result()
    assert response.success, response.message
    # The same reset in a twin (same seed): the node's scene is that state.
    with SawyerSim(SawyerSimConfig(task='pusher', seed=5, **SIZE)) as twin:
        outcome = SimDriver(twin, SimDriverConfig(**resets)).reset()
        assert response.message == outcome.describe()
        assert wait_for(lambda: truth.messages and np.allclose(
            truth.messages[-1].data, twin.state_vector(), atol=1e-9)), node.output
    if outcome.to_goal:
        assert 'to a sampled goal state [' in response.message, response.message
        np.testing.assert_allclose(truth.messages[-1].data, outcome.goal_state, atol=2e-3)
    else:  # the hand in the pusher's hand-goal box
        assert 'with the hand and pucks at [' in response.message, response.message
        hand = np.array(truth.messages[-1].data[:2])
        assert np.all(np.abs(hand - [0.0, 0.6]) <= 0.05 + 2e-3), hand
    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output

    bad = start_node('mujoco_sim', parameters={'reset_to_goal_probability': 1.5})
    assert bad.wait_exit(timeout=60.0) == 2, bad.output
    assert 'reset_to_goal_probability' in bad.output and 'Traceback' not in bad.output
