"""robot_chain: a chain's nodes composed in one process keep their names, settings and remaps."""

import signal

from geometry_msgs.msg import TwistStamped
import numpy as np
import pytest
from sensor_msgs.msg import Image

from rig_msgs.msg import Goal, LatentState
from rig_ros import graph
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.interfaces.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS
from rig_ros.nodes.robot_chain import member_arguments

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
