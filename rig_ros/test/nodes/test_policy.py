"""policy as a process: gating by activation, stale latents, bad weights, zero on exit."""

import signal
import time

from geometry_msgs.msg import TwistStamped
import numpy as np
import pytest
from std_srvs.srv import SetBool

from rig_msgs.msg import Goal, LatentState, Transition, Weights
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, TRANSITION_QOS

NS = '/robot_0'
DIM = 4


def speed(msg: TwistStamped) -> float:
    return float(np.hypot(msg.twist.linear.x, msg.twist.linear.y))


def call(ros, wait_for, client, data: bool) -> SetBool.Response:
    """Call policy/activate and wait (bounded) for the answer."""
    assert client.wait_for_service(timeout_sec=20.0)
    future = client.call_async(SetBool.Request(data=data))
    assert wait_for(future.done, timeout=10.0)
    return future.result()


@pytest.mark.multiprocess
def test_gated_by_activation_and_fresh_latents(ros, start_node, wait_for):
    node = start_node('policy', namespace=NS, parameters={
        'control_rate_hz': 20.0, 'stale_after_s': 0.3, 'max_speed_m_s': 0.2})
    velocities = ros.collect(TwistStamped, f'{NS}/ee_velocity', COMMAND_QOS)
    transitions = ros.collect(Transition, f'{NS}/rig/transition', TRANSITION_QOS)
    latents = ros.publisher(LatentState, f'{NS}/rig/latent', SENSOR_QOS)
    goals = ros.publisher(Goal, f'{NS}/rig/goal', LATCHED_QOS)
    weights = ros.publisher(Weights, f'{NS}/rig/weights', LATCHED_QOS)
    client = ros.node.create_client(SetBool, f'{NS}/policy/activate')
    assert ros.wait_for_subscribers(latents), node.output
    assert ros.wait_for_subscribers(goals), node.output

    goal = Goal(mean=[0.5] * DIM, episode_id=1, episode_length=0, explore=True,
                source='prior')
    goal.header.stamp = ros.node.get_clock().now().to_msg()
    goals.publish(goal)

    def feed(duration: float) -> None:
        """Publish fresh latents at 50 Hz for `duration` seconds."""
        end = time.monotonic() + duration
        while time.monotonic() < end:
            msg = LatentState(mean=list(np.random.default_rng().standard_normal(DIM)))
            msg.header.stamp = ros.node.get_clock().now().to_msg()
            latents.publish(msg)
            time.sleep(0.02)

    # Inactive (start_active defaults to false): zeros at the control rate, fresh data or not.
    feed(1.0)
    assert len(velocities.messages) >= 5, node.output
    assert all(speed(m) == 0.0 for m in velocities.messages)
    assert velocities.messages[-1].header.frame_id == 'base'

    # Garbage weights are refused; the node lives on.
    weights.publish(Weights(model_name='policy', version=3, safetensors=b'\x00' * 64))
    assert wait_for(lambda: 'rejected policy weights version 3' in node.output), node.output

    # Activated: exploring without weights means random actions, within max_speed_m_s.
    response = call(ros, wait_for, client, True)
    assert response.success and response.message == 'activated'
    start = len(velocities.messages)
    feed(1.0)
    moving = [m for m in velocities.messages[start:] if speed(m) > 0.0]
    assert len(moving) >= 5, node.output
    assert all(abs(m.twist.linear.x) <= 0.2 and abs(m.twist.linear.y) <= 0.2 for m in moving)
    assert wait_for(lambda: len(transitions.messages) >= 3)
    first = transitions.messages[0]
    assert (first.robot_id, first.episode_id, first.step_index) == ('robot_0', 1, 0)
    steps = [m.step_index for m in transitions.messages]
    assert steps == list(range(len(steps)))  # one step per latent, in order

    # No new latents: after stale_after_s the robot is stopped.
    stopped = time.monotonic()
    time.sleep(0.8)
    late = [m for m, t in zip(velocities.messages, _arrivals(velocities, stopped + 0.45))
            if t]
    assert late and all(speed(m) == 0.0 for m in late), node.output
    assert 'standing still: stale latent' in node.output

    # Fresh again, then deactivated: zeros.
    feed(0.5)
    assert speed(velocities.messages[-1]) > 0.0
    assert call(ros, wait_for, client, False).message == 'deactivated'
    start = len(velocities.messages)
    feed(0.5)
    assert velocities.messages[start:] and all(
        speed(m) == 0.0 for m in velocities.messages[start:])

    # SIGTERM: the last command is a zero, the exit clean and quick.
    call(ros, wait_for, client, True)
    feed(0.3)
    began = time.monotonic()
    assert node.stop(signal.SIGTERM, timeout=10.0) == 0, node.output
    assert time.monotonic() - began < 5.0
    assert wait_for(lambda: speed(velocities.messages[-1]) == 0.0, timeout=2.0)
    assert 'Traceback' not in node.output


def _arrivals(collector, after: float) -> list[bool]:
    """For each collected message: whether its stamp is later than monotonic time `after`."""
    offset = time.time() - time.monotonic()
    return [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 > after + offset
            for m in collector.messages]


def test_bad_parameter_exits_nonzero_naming_it(start_node):
    node = start_node('policy', parameters={'stale_after_s': 0.0})
    assert node.wait_exit(timeout=30.0) == 2, node.output
    assert 'stale_after_s must be > 0' in node.output
