"""Operators' tools: a goal image from a file (`rig send-goal`), a puck tracker's calibration.

`send_goal` publishes an image file (PNG, JPEG, ... any size; colour, grey or with alpha) as
sensor_msgs/Image on a robot's `rig/goal_image`, once a subscriber has matched, from a
reliable, transient-local writer that stays up for `linger_s` seconds. (`rig report`'s plots
are `rig_ros.report.plot_run`.)

`calibrate_tracker` (`rig calibrate-tracker`) writes the `core.tracker` calibration the
policy's aimed exploration pushes read (`puck_tracker_file`): from the simulator (the puck
rendered at `core.pushes.calibration_states`' places), or on a robot from image files of the
puck on marked places and a JSON list of those places' (x, y) in the frame of robot/state.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Optional

import numpy as np

from rig_ros.core.preprocessing import CropBox, preprocess, PreprocessConfig
from rig_ros.core.tracker import PuckTracker
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


CALIBRATION_FRAME_SIZE = 84
"""Side the calibration frames are resized to: the tracker maps fractions of the frame, so
any size works; what must match the camera pipeline's frames is the crop."""


def _calibration_preprocess(crop: Optional[tuple[int, int, int, int]]) -> PreprocessConfig:
    return PreprocessConfig(crop=CropBox(*crop) if crop is not None else None,
                            size=CALIBRATION_FRAME_SIZE)


def calibration_frames(frames_dir: pathlib.Path, places_path: pathlib.Path,
                       crop: Optional[tuple[int, int, int, int]] = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Return the image files of `frames_dir` (by name) and their places (N, 2), in metres.

    The images are cropped as the camera pipeline crops; ValueError when a file is unreadable
    or the counts differ.
    """
    if not frames_dir.is_dir():
        raise ValueError(f'no folder {str(frames_dir)!r}')
    try:
        places = np.asarray(json.loads(places_path.read_text()), dtype=float)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f'{str(places_path)!r} is not a JSON list of [x, y] places: '
                         f'{error}') from None
    files = sorted(path for path in frames_dir.iterdir() if path.is_file())
    if places.ndim != 2 or places.shape[1] != 2 or len(places) != len(files):
        raise ValueError(f'{len(files)} image files in {str(frames_dir)!r} but places of '
                         f'shape {places.shape}: give one [x, y] per file, in name order')
    images = []
    for path in files:
        image, encoding = read_image(path)
        if image.ndim != 3:
            raise ValueError(f'{str(path)!r} is not a colour image')
        images.append(preprocess(image, _calibration_preprocess(crop), encoding))
    return np.stack(images), places


def simulated_calibration_frames(task: str, crop: Optional[tuple[int, int, int, int]] = None
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return the simulator's frames of the puck at `calibration_states`' places, and those."""
    from rig_ros.core.pipeline import calibration_frames
    from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig
    config = _calibration_preprocess(crop)
    with SawyerSim(SawyerSimConfig(task=task)) as sim:
        return calibration_frames(sim, task, lambda: preprocess(
            sim.render(CALIBRATION_FRAME_SIZE, CALIBRATION_FRAME_SIZE), config))


def calibrate_tracker(out: str, task: str = 'pusher', frames_dir: Optional[str] = None,
                      places: Optional[str] = None,
                      crop: Optional[tuple[int, int, int, int]] = None) -> int:
    """Calibrate a puck tracker and write it to `out`; return the exit code (0: written)."""
    try:
        if (frames_dir is None) != (places is None):
            raise ValueError('give both --frames and --places (a robot), or neither (the '
                             'simulator)')
        if frames_dir is not None and places is not None:
            frames, positions = calibration_frames(pathlib.Path(frames_dir),
                                                   pathlib.Path(places), crop)
        else:
            frames, positions = simulated_calibration_frames(task, crop)
        tracker = PuckTracker()
        error_m = tracker.calibrate(frames, positions)
    except ValueError as error:
        print(f'rig calibrate-tracker: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    tracker.save(out, error_m)
    print(f'{out}: calibrated on {len(frames)} frames, largest fit error {100 * error_m:.2f} cm')
    return 0
