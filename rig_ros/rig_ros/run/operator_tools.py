"""Operators' tools: send an image file as a goal image (`rig send-goal`).

`send_goal` publishes an image file (PNG, JPEG, ... any size; colour, grey or with alpha) as
sensor_msgs/Image on a robot's `rig/goal_image`, once a subscriber has matched, from a
reliable, transient-local writer that stays up for `linger_s` seconds. (`rig report`'s plots
are `rig_ros.report.plot_run`.)
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

from rig_ros.interfaces import names

EXIT_BAD_INPUT = 2


def read_image(path: pathlib.Path) -> tuple[np.ndarray, str]:
    """Return an image file as an array and its ROS encoding; ValueError if unreadable."""
    import cv2
    if not path.is_file():
        raise ValueError(f'no image file {str(path)!r}')
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError(f'cannot read {str(path)!r} as an image')
    if image.ndim == 2:
        return image, 'mono16' if image.dtype == np.uint16 else 'mono8'
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    return image, {3: 'bgr8', 4: 'bgra8'}[image.shape[2]]


def send_goal(image_path: str, namespace: str = 'robot_0',
              topic: str = names.GOAL_IMAGE_TOPIC, timeout_s: float = 10.0,
              linger_s: float = 1.0) -> int:
    """Publish an image file as a goal image; return the exit code (0: a subscriber had it)."""
    try:
        image, encoding = read_image(pathlib.Path(image_path))
    except ValueError as error:
        print(f'rig send-goal: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import Image

    from rig_ros.edge.image_msgs import array_to_image

    from rig_ros.graph import join_names
    from rig_ros.interfaces.qos import LATCHED_QOS
    name = topic if topic.startswith('/') else join_names(namespace or '/', topic)
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(names.SEND_GOAL_NODE, context=context)
    try:
        publisher = node.create_publisher(Image, name, LATCHED_QOS)
        deadline = time.monotonic() + timeout_s
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        matched = publisher.get_subscription_count() > 0
        msg = array_to_image(image, encoding)
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = 'goal'
        time.sleep(0.2 if matched else 0.0)  # let the subscriber's side match too
        publisher.publish(msg)
        print(f'sent {image_path} ({image.shape[1]}x{image.shape[0]} {encoding}) on {name}'
              + ('' if matched else f'; no subscriber within {timeout_s} s'))
        time.sleep(linger_s)  # a reliable writer resends what was lost
        return 0 if matched else 1
    finally:
        node.destroy_node()
        context.try_shutdown()
