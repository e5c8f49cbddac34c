"""Operators' tools: `rig send-goal` (an image file as a goal) and `rig report` (PNG plots).

send-goal publishes an image file (PNG, JPEG, ... any size; colour, grey or with alpha) as
sensor_msgs/Image on a robot's `rig/goal_image`, once a subscriber has matched, from a
reliable, transient-local writer that stays up for `--linger` seconds.
report reads a run directory and writes PNGs next to it: `learning_curve.png` (the in-process
pipeline's evaluations, result.json or metrics.jsonl), `learner_curves.png` (the learner's
TensorBoard scalars) and `goals_vs_reached.png` (goal images over the final frames of the
latest evaluation, eval_frames.npz).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any, Optional

import numpy as np

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


def send_goal(image_path: str, namespace: str = 'robot_0', topic: str = 'rig/goal_image',
              timeout_s: float = 10.0, linger_s: float = 1.0) -> int:
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
    node = rclpy.create_node('rig_send_goal', context=context)
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


def _plot_dicts(points: list[dict[str, Any]], x_key: str, path: pathlib.Path,
                title: str) -> Optional[pathlib.Path]:
    """Plot every numeric key of `points` against `x_key`, one labelled panel each."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = sorted({key for point in points for key, value in point.items()
                   if key != x_key and isinstance(value, (int, float))
                   and not isinstance(value, bool)})
    if not keys:
        return None
    columns = min(3, len(keys))
    rows = (len(keys) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, key in zip(axes.flat, keys):
        xy = [(point[x_key], point[key]) for point in points if key in point]
        axis.plot([x for x, _ in xy], [y for _, y in xy], marker='.' if len(xy) < 50 else None)
        axis.set(title=key, xlabel=x_key)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis('off')
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def tensorboard_scalars(directory: pathlib.Path) -> list[dict[str, Any]]:
    """Return the scalars of a TensorBoard log directory as points {'step', tag: value}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(directory), size_guidance={'scalars': 0})
    accumulator.Reload()
    points: dict[int, dict[str, Any]] = {}
    for tag in accumulator.Tags().get('scalars', []):
        for event in accumulator.Scalars(tag):
            points.setdefault(event.step, {'step': event.step})[tag] = event.value
    return [points[step] for step in sorted(points)]


def goal_grid(goals: np.ndarray, finals: np.ndarray, path: pathlib.Path, title: str) -> None:
    """Write goal images (top row) over the final frames reached (bottom row)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    count = len(goals)
    figure, axes = plt.subplots(2, count, figsize=(max(6.0, 1.6 * count + 0.8), 3.8),
                                squeeze=False)
    for index in range(count):
        for row, images in enumerate((goals, finals)):
            axes[row, index].imshow(images[index])
            axes[row, index].set_xticks([])
            axes[row, index].set_yticks([])
        axes[0, index].set_title(f'goal {index}', fontsize=8)
    axes[0, 0].set_ylabel('goal image')
    axes[1, 0].set_ylabel('reached')
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def report(run_dir: str) -> list[pathlib.Path]:
    """Write the run directory's PNGs; return them. ValueError if there is nothing to plot."""
    from rig_ros import report as plots
    run = pathlib.Path(run_dir)
    if not run.is_dir():
        raise ValueError(f'no run directory {run_dir!r}')
    written: list[pathlib.Path] = []
    result_file, metrics_file = run / 'result.json', run / 'metrics.jsonl'
    curve: list[dict[str, Any]] = []
    if result_file.is_file():
        curve = json.loads(result_file.read_text()).get('curve', [])
    elif metrics_file.is_file():
        lines = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
        curve = [line for line in lines if line.get('stage') == 'eval']
    if curve:
        path = run / 'learning_curve.png'
        plots.plot_learning_curves({run.name: curve}, path, f'RIG evaluations: {run.name}')
        written.append(path)
    if (run / 'tensorboard').is_dir():
        path = _plot_dicts(tensorboard_scalars(run / 'tensorboard'), 'step',
                           run / 'learner_curves.png',
                           f'learner: {run.name} (x: stored transitions)')
        written += [path] if path else []
    if (run / 'eval_frames.npz').is_file():
        with np.load(run / 'eval_frames.npz') as data:
            goal_grid(data['goals'], data['finals'], run / 'goals_vs_reached.png',
                      f'goal images (top), final frames reached (bottom)\n'
                      f'{run.name}, RL step {int(data["rl_step"])}')
        written.append(run / 'goals_vs_reached.png')
    if not written:
        raise ValueError(f'{run_dir!r} holds no result.json, metrics.jsonl, tensorboard/ or '
                         'eval_frames.npz')
    return written


def _send_goal_command(args: argparse.Namespace) -> int:
    return send_goal(args.image, args.namespace, args.topic, args.timeout, args.linger)


def _report_command(args: argparse.Namespace) -> int:
    for path in report(args.run_dir):
        print(path)
    return 0


def add_commands(commands: Any) -> None:
    """Add `send-goal` and `report` to the `rig` subcommands."""
    goal = commands.add_parser('send-goal', help='publish an image file as a goal image')
    goal.add_argument('image', help='image file (PNG, JPEG, ...; any size)')
    goal.add_argument('--namespace', default='robot_0', help='the robot (namespace)')
    goal.add_argument('--topic', default='rig/goal_image',
                      help='relative to the namespace unless absolute')
    goal.add_argument('--timeout', type=float, default=10.0,
                      help='seconds to wait for a subscriber')
    goal.add_argument('--linger', type=float, default=1.0,
                      help='seconds to stay up after publishing')
    goal.set_defaults(handler=_send_goal_command)
    plots = commands.add_parser('report', help='PNG learning curves and goal grid of a run')
    plots.add_argument('run_dir')
    plots.set_defaults(handler=_report_command)
