"""scene_camera as a process: the sim's scene at published joint states, bad states skipped."""

import signal

import numpy as np
import pytest
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState

from rig_ros.edge.image_msgs import image_to_array
from rig_ros.interfaces.names import HEAD_CAMERA_TOPIC, JOINT_STATES_TOPIC
from rig_ros.interfaces.qos import ARM_QOS, SENSOR_QOS
from rig_ros.robot.kinematics import JOINT_NAMES
from rig_ros.sim.joint_camera import JointCamera, JointCameraConfig

pytestmark = [pytest.mark.robot, pytest.mark.multiprocess]

SIZE = {'image_height': 60, 'image_width': 80}
RATE_HZ = 20.0
RESET = [-0.297, -1.0206, 0.0393, 1.7965, -0.0288, 0.7954, 3.0729]  # sawyer_reacher.yaml
TURNED = [RESET[0] + 0.15] + RESET[1:]  # the tool ~9 cm to the side


def joint_state(angles, names=JOINT_NAMES) -> JointState:
    """Return an intera-like joint state: head_pan, then the arm reversed (any order works)."""
    return JointState(name=['head_pan'] + list(names)[::-1],
                      position=[0.0] + list(angles)[::-1])


def stamp_s(msg: Image) -> float:
    return Time.from_msg(msg.header.stamp).nanoseconds / 1e9


def test_frames_follow_the_joint_states_and_bad_states_are_skipped(ros, start_node, wait_for):
    node = start_node('scene_camera', parameters={'rate_hz': RATE_HZ, **SIZE})
    frames = ros.collect(Image, HEAD_CAMERA_TOPIC, SENSOR_QOS)
    states = ros.publisher(JointState, JOINT_STATES_TOPIC, ARM_QOS)
    assert ros.wait_for_subscribers(states), node.output
    assert wait_for(lambda: 'scene_camera' in node.output and 'Hz' in node.output), node.output
    assert not wait_for(lambda: frames.messages, timeout=1.0)  # no frame without joints

    with JointCamera(JointCameraConfig(**SIZE)) as twin:
        expected = {'reset': twin.render(RESET).copy(), 'turned': twin.render(TURNED).copy()}

    def newest() -> np.ndarray:
        return image_to_array(frames.messages[-1])

    def showing(name: str):
        return lambda: frames.messages and np.array_equal(newest(), expected[name])

    states.publish(joint_state(RESET))
    assert wait_for(showing('reset'), timeout=20.0), node.output
    msg = frames.messages[-1]
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == (
        'rgb8', 60, 80, 'head_camera')
    # Frames keep coming for an arm standing still, each newly stamped.
    count = len(frames.messages)
    assert wait_for(lambda: len(frames.messages) >= count + 5, timeout=10.0), node.output
    stamps = [stamp_s(m) for m in frames.messages[count:]]
    assert np.all(np.diff(stamps) > 0) and np.median(np.diff(stamps)) < 3 / RATE_HZ, stamps

    states.publish(joint_state(TURNED))
    assert wait_for(showing('turned'), timeout=10.0), node.output
    assert not np.array_equal(expected['reset'], expected['turned'])

    # Bad joint states: logged, skipped; the last good angles stay and frames keep coming.
    bad = {
        'non-finite': joint_state([float('nan')] + RESET[1:]),
        'missing or repeated': joint_state(RESET, names=JOINT_NAMES[:6] + ('right_j9',)),
        'positions': JointState(name=list(JOINT_NAMES), position=RESET[:5]),
    }
    for reason, msg in bad.items():
        count = len(frames.messages)
        states.publish(msg)
        assert wait_for(lambda: reason in node.output, timeout=10.0), (reason, node.output)
        assert wait_for(lambda: len(frames.messages) >= count + 3, timeout=10.0), node.output
        assert np.array_equal(newest(), expected['turned']), reason
    states.publish(joint_state(RESET))
    assert wait_for(showing('reset'), timeout=10.0), node.output
    assert node.returncode is None

    assert node.stop(signal.SIGINT) == 0, node.output
    assert 'Traceback' not in node.output
    assert '3 joint states skipped' in node.output, node.output
