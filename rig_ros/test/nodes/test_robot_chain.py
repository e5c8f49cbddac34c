"""robot_chain: a chain's nodes composed in one process keep their names, settings and remaps."""

import signal
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.experimental import EventsExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from rig_msgs.msg import Goal, LatentState
from rig_ros import graph
from rig_ros.core.actor import Actor, PolicySpec
from rig_ros.core.policy_runtime import encode_policy_weights
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from rig_ros.nodes.camera_pipeline import CameraPipeline
from rig_ros.nodes.policy import PolicyNode
from rig_ros.nodes.robot_chain import connect_members, member_arguments
from rig_ros.nodes.vae_encoder import VAEEncoder

NAMESPACE = '/robot_0'
CAMERA = '/driver/camera/color'


def test_member_arguments_keep_files_and_own_remappings():
    args = ['robot_chain', '--ros-args', '-r', '__node:=robot_chain', '-r', '__ns:=/robot_0',
            '--params-file', 'task.yaml', '-r', 'policy:rig/goal:=/goal', '-r',
            'camera_pipeline:camera/image_raw:=/cam', '-r', 'a:=b', '--log-level', 'warn']
    assert member_arguments(args, 'policy', '/robot_0') == [
        '--ros-args', '-r', '__ns:=/robot_0', '--params-file', 'task.yaml', '-r',
        'policy:rig/goal:=/goal', '-r', 'a:=b', '--log-level', 'warn']
    assert '-r' in member_arguments(args, 'camera_pipeline', '/x')
    assert 'policy:rig/goal:=/goal' not in member_arguments(args, 'camera_pipeline', '/x')


def test_members_hand_frames_and_latents_on_in_process(ros_domain_id, vae_checkpoint):
    """A frame's command leaves within camera_pipeline's callback; DDS copies are skipped."""
    context = Context()
    rclpy.init(context=context)
    executor = EventsExecutor(context=context)
    try:
        camera = CameraPipeline(context=context)  # 84x84 frames, as the policies expect
        encoder = VAEEncoder(context=context, parameter_overrides=[
            Parameter('vae_checkpoint', value=str(vae_checkpoint))])
        policy = PolicyNode(context=context, parameter_overrides=[
            Parameter('start_active', value=True), Parameter('act_on_latent', value=True),
            Parameter('publish_transitions', value=False)])
        # A policy remapped away from the encoder's latents is not connected to it.
        apart = PolicyNode(context=context, cli_args=[
            '--ros-args', '-r', '__node:=apart', '-r', 'rig/latent:=other/latent'])
        assert connect_members([camera, encoder, policy, apart]) == [
            'camera_pipeline -> policy (/rig/image)', 'camera_pipeline -> apart (/rig/image)',
            'camera_pipeline -> vae_encoder (/rig/image)',
            'vae_encoder -> policy (/rig/latent)']
        for node in (camera, encoder, policy, apart):
            executor.add_node(node)
        policy.runtime.load_weights(encode_policy_weights(
            Actor(PolicySpec(4, 4, 2, (16, 16))))[1], 1)
        commands: list[np.ndarray] = []
        send = policy.publish_velocity
        policy.publish_velocity = lambda velocity: (commands.append(velocity), send(velocity))
        goal = Goal(mean=[0.1] * 4, episode_id=1, episode_length=0, source='prior')
        goal.header.stamp = policy.get_clock().now().to_msg()
        policy.goal_callback(goal)
        frame = array_to_image(np.full((60, 80, 3), 90, np.uint8), 'rgb8')
        frame.header.stamp = policy.get_clock().now().to_msg()
        stamp = frame.header.stamp.sec + frame.header.stamp.nanosec * 1e-9
        before = len(commands)
        camera.image_callback(frame)  # no spinning: the chain runs inside this call
        assert len(commands) == before + 1 and np.any(commands[-1] != 0.0)
        assert policy.runtime.latent is not None
        assert policy.runtime.latent.stamp == pytest.approx(stamp)
        assert policy.runtime.frame is not None
        assert apart.runtime.latent is None and apart.runtime.frame is not None
        acted = len(commands)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and policy.latent_hand_off.copies_skipped < 1:
            executor.spin_once(timeout_sec=0.1)
        # The latent and the frame also came over DDS: skipped, the policy did not act again.
        assert policy.latent_hand_off.copies_skipped == 1
        assert len(commands) == acted
        other = array_to_image(np.full((84, 84, 3), 30, np.uint8), 'rgb8')
        other.header.stamp = Time(sec=5)
        encoder.image_hand_off.taken(other)  # another publisher's image on the topic: encoded
        assert policy.runtime.latent.stamp == pytest.approx(5.0)
    finally:
        executor.shutdown(timeout_sec=1.0)
        context.try_shutdown()


@pytest.mark.multiprocess
def test_composed_chain_acts_on_camera_frames(ros, start_node, wait_for, vae_checkpoint):
    base = (graph.config_file(graph.BASE_CONFIG),)
    specs = graph.compose_chain([
        graph.NodeSpec('camera_pipeline', 'camera_pipeline', NAMESPACE, {'size': 48},
                       base, (('camera/image_raw', CAMERA),)),
        graph.NodeSpec('vae_encoder', 'vae_encoder', NAMESPACE,
                       {'vae_checkpoint': str(vae_checkpoint)}, base),
        graph.NodeSpec('policy', 'policy', NAMESPACE, {
            'start_active': True, 'act_on_latent': True, 'publish_transitions': False,
            'robot_id': 'robot_7'}, base),
    ])
    assert [spec.name for spec in specs] == ['robot_chain']
    chain = specs[0]
    node = start_node(chain.executable, name=chain.name, namespace=chain.namespace,
                      parameters=dict(chain.parameters), param_files=chain.param_files,
                      remappings=chain.remappings)
    images = ros.collect(Image, f'{NAMESPACE}/rig/image', SENSOR_QOS)
    latents = ros.collect(LatentState, f'{NAMESPACE}/rig/latent', SENSOR_QOS)
    velocities = ros.collect(TwistStamped, f'{NAMESPACE}/ee_velocity', COMMAND_QOS)
    camera = ros.publisher(Image, CAMERA, SENSOR_QOS)
    goals = ros.publisher(Goal, f'{NAMESPACE}/rig/goal', LATCHED_QOS)
    expected = {(name, NAMESPACE) for name in (
        'robot_chain', 'camera_pipeline', 'vae_encoder', 'policy')}
    assert wait_for(lambda: expected <= set(
        ros.node.get_node_names_and_namespaces())), node.output
    goal = Goal(mean=[0.1] * 4, episode_id=1, episode_length=0, explore=True, source='prior')
    goal.header.stamp = ros.node.get_clock().now().to_msg()
    goals.publish(goal)
    assert ros.wait_for_subscribers(camera), node.output

    def fed() -> bool:
        frame = array_to_image(np.full((60, 80, 3), 90, np.uint8), 'rgb8')
        frame.header.stamp = ros.node.get_clock().now().to_msg()
        camera.publish(frame)
        return len(velocities.messages) >= 3
    assert wait_for(fed, timeout=30.0, interval=0.1), node.output
    # The camera_pipeline member took its own override (48, not the task file's 84).
    assert images.messages[0].width == 48
    assert latents.messages and len(latents.messages[0].mean) == 4
    assert node.stop(signal.SIGINT) == 0, node.output
    # On shutdown the policy member sends a zero command.
    assert wait_for(lambda: velocities.messages[-1].twist.linear.x == 0.0, timeout=5.0)
    assert 'Traceback' not in node.output


@pytest.mark.parametrize('nodes', [['learner'], [], ['policy', 'policy']])
def test_bad_member_list_exits_2(start_node, nodes):
    node = start_node('robot_chain', parameters={'nodes': nodes} if nodes else {})
    assert node.wait_exit(timeout=30.0) == 2, node.output
