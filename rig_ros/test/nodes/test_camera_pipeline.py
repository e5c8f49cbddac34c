"""camera_pipeline as a separate process: conversion, newest frame only, robustness, shutdown."""

import re
import signal
import time

from builtin_interfaces.msg import Time
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from rig_ros.core.preprocessing import CropBox, preprocess, PreprocessConfig
from rig_ros.edge.image_msgs import array_to_image, image_to_array
from rig_ros.interfaces.qos import SENSOR_QOS
from rig_ros.nodes.camera_pipeline import CameraPipeline
from rig_ros.run.launch_description import fastdds_profile, PROFILE_VARIABLE

NAMESPACE = '/robot_0'
HEIGHT, WIDTH = 480, 640  # a camera's frame: 900 KB of rgb8
CROP_BOX = CropBox(40, 80, 400, 480)  # the quadrant split stays in the middle
CROP = {'crop.top': 40, 'crop.left': 80, 'crop.height': 400, 'crop.width': 480}
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(autouse=True)
def large_frame_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the package's Fast DDS profile, as the runner and the launch files do.

    With Fast DDS's default transports best-effort 640x480 frames (900 KB, larger than the
    default shared-memory segment) mostly never arrived: this test stalled for 10-20 s at a
    time with them (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA changes nothing under
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, where rmw_fastrtps sets the transports itself).
    """
    monkeypatch.delenv('FASTDDS_BUILTIN_TRANSPORTS', raising=False)
    monkeypatch.setenv(PROFILE_VARIABLE, fastdds_profile())


def quadrant_frame() -> np.ndarray:
    """Return a 480x640 RGB frame: red, green / blue, white quadrants."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[:HEIGHT // 2, :WIDTH // 2] = RED
    frame[:HEIGHT // 2, WIDTH // 2:] = GREEN
    frame[HEIGHT // 2:, :WIDTH // 2] = BLUE
    frame[HEIGHT // 2:, WIDTH // 2:] = WHITE
    return frame


def stamped(msg: Image, sec: int) -> Image:
    msg.header.stamp = Time(sec=sec)
    msg.header.frame_id = 'camera'
    return msg


def publish_until(ros, wait_for, publisher, msg, received, timeout=20.0) -> bool:
    """Publish `msg` every 0.2 s (best effort may drop one) until `received()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        if wait_for(received, timeout=0.2):
            return True
    return False


@pytest.mark.multiprocess
def test_frames_preprocessed_malformed_dropped_clean_exit(ros, start_node, wait_for):
    node = start_node('camera_pipeline', namespace=NAMESPACE, parameters=CROP)
    images = ros.collect(Image, f'{NAMESPACE}/rig/image', SENSOR_QOS)
    camera = ros.publisher(Image, f'{NAMESPACE}/camera/image_raw', SENSOR_QOS)
    assert ros.wait_for_subscribers(camera), node.output
    assert wait_for(lambda: ros.node.count_publishers(f'{NAMESPACE}/rig/image') >= 1)

    # A bgr8 640x480 frame becomes the rgb8 84x84 crop, with the frame's header.
    rgb = quadrant_frame()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert publish_until(ros, wait_for, camera, stamped(array_to_image(bgr, 'bgr8'), 1),
                         lambda: images.matching(lambda m: m.header.stamp.sec == 1)), node.output
    out = images.matching(lambda m: m.header.stamp.sec == 1)[0]
    assert (out.encoding, out.height, out.width, out.step) == ('rgb8', 84, 84, 84 * 3)
    assert out.header.frame_id == 'camera'
    image = image_to_array(out)
    config = PreprocessConfig(crop=CROP_BOX, size=84)
    np.testing.assert_array_equal(image, preprocess(bgr, config, 'bgr8'))
    # The crop keeps the quadrant split at the middle; colours are RGB, not BGR.
    for (row, col), colour in {(10, 10): RED, (10, 73): GREEN, (73, 10): BLUE,
                               (73, 73): WHITE}.items():
        assert tuple(image[row, col]) == colour

    # Malformed frames: short data for the step, unknown encoding, crop outside the frame.
    short = stamped(array_to_image(bgr, 'bgr8'), 2)
    short.data = bytes(short.data)[:-1000]
    unknown = stamped(array_to_image(bgr, 'bgr8'), 3)
    unknown.encoding = 'yuv422'
    small = stamped(array_to_image(bgr[:50, :50].copy(), 'bgr8'), 4)
    # Only the newest frame waits for the node (keep-last 1), so send them one by one.
    assert publish_until(ros, wait_for, camera, short, lambda: 'too short' in node.output), (
        node.output)
    assert 'dropped malformed camera frame' in node.output
    for msg in (unknown, small):
        for _ in range(3):
            camera.publish(msg)
            time.sleep(0.1)

    # The node lives on and a good frame still comes through.
    assert publish_until(ros, wait_for, camera, stamped(array_to_image(bgr, 'bgr8'), 5),
                         lambda: images.matching(lambda m: m.header.stamp.sec == 5)), node.output
    assert node.returncode is None
    assert not images.matching(lambda m: m.header.stamp.sec in (2, 3, 4))

    # A burst faster than the node converts: it works on the newest frame, never on a backlog
    # of stale ones; the frames it skipped are counted.
    burst = range(10, 40)
    for sec in burst:
        camera.publish(stamped(array_to_image(bgr, 'bgr8'), sec))
    assert publish_until(ros, wait_for, camera, stamped(array_to_image(bgr, 'bgr8'), burst[-1]),
                         lambda: images.matching(lambda m: m.header.stamp.sec == burst[-1])), (
        node.output)
    seen = [m.header.stamp.sec for m in images.matching(lambda m: m.header.stamp.sec in burst)]
    assert seen == sorted(seen), seen  # never an older frame after a newer one

    # SIGINT: a quick exit 0, no traceback, a summary of the frames seen.
    started = time.monotonic()
    assert node.stop(signal.SIGINT, timeout=10.0) == 0, node.output
    assert time.monotonic() - started < 5.0
    assert 'Traceback' not in node.output
    summary = re.search(r'camera frames: (\d+) processed, (\d+) skipped', node.output)
    assert summary, node.output
    assert int(summary[1]) >= 2 + len(seen)  # frames 1 and 5 (maybe resent), the burst's


@pytest.mark.multiprocess
def test_sigterm_exits_cleanly(ros, start_node, wait_for):
    node = start_node('camera_pipeline', namespace=NAMESPACE)
    assert wait_for(lambda: ros.node.count_publishers(f'{NAMESPACE}/rig/image') >= 1), (
        node.output)
    assert node.stop(signal.SIGTERM, timeout=10.0) == 0, node.output
    assert 'Traceback' not in node.output


def test_bad_parameter_exits_nonzero_naming_it(start_node):
    node = start_node('camera_pipeline', parameters={'size': 0})
    assert node.wait_exit(timeout=30.0) == 2, node.output
    assert 'size must be a positive integer' in node.output
    assert 'Traceback' not in node.output


def test_malformed_frames_name_the_problem(ros_domain_id):
    """In process: each kind of malformed frame raises a ValueError naming the problem."""
    context = Context()
    rclpy.init(context=context)
    try:
        node = CameraPipeline(context=context)
        bgr = np.ascontiguousarray(quadrant_frame()[:, :, ::-1])
        assert image_to_array(node.convert(array_to_image(bgr, 'bgr8'))).shape == (84, 84, 3)
        short = array_to_image(bgr, 'bgr8')
        short.data = bytes(short.data)[:-1]
        unknown = array_to_image(bgr, 'bgr8')
        unknown.encoding = 'yuv422'
        narrow = array_to_image(bgr, 'bgr8')
        narrow.step = 10
        empty = Image(encoding='rgb8')
        small = array_to_image(bgr[:50, :50].copy(), 'bgr8')
        # A crop is all four fields at once; one alone is rejected, the node keeps its config.
        assert not node.set_parameters([Parameter('crop.top', value=40)])[0].successful
        assert node.config.crop is None
        assert node.set_parameters_atomically(
            [Parameter(name, value=value) for name, value in CROP.items()]).successful
        assert node.config.crop == CROP_BOX
        for msg, problem in ((short, 'too short'),
                             (unknown, "unsupported image encoding 'yuv422'"),
                             (narrow, 'step 10 is shorter'), (empty, 'size must be positive'),
                             (small, 'fall outside the 50x50 frame')):
            with pytest.raises(ValueError, match=problem):
                node.convert(msg)
        # Frames the node never saw are counted per publisher from its sequence numbers.
        first, second = {'data': b'\x01' * 16}, {'data': b'\x02' * 16}
        assert node.count_skipped(first, 1) == 0
        assert node.count_skipped(first, 5) == 3
        assert node.count_skipped(second, 7) == 0  # another publisher: its own numbers
        assert node.count_skipped(first, 6) == 0
        assert node.count_skipped(None, None) == 0
        assert node.skipped == 3
        node.destroy_node()
    finally:
        context.try_shutdown()
