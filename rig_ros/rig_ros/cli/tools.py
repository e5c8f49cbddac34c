"""Operators' tools: `rig send-goal` (an image file as a goal) and `rig report` (PNG plots)."""

from __future__ import annotations

import argparse

from rig_ros import report
from rig_ros.interfaces import names
from rig_ros.run import operator_tools


def _send_goal(args: argparse.Namespace) -> int:
    return operator_tools.send_goal(args.image, args.namespace, args.topic, args.timeout,
                                    args.linger)


def _report(args: argparse.Namespace) -> int:
    for path in report.plot_run(args.run_dir):
        print(path)
    return 0


def add_commands(commands: 'argparse._SubParsersAction[argparse.ArgumentParser]') -> None:
    """Add `send-goal` and `report` to the `rig` subcommands."""
    goal = commands.add_parser('send-goal', help='publish an image file as a goal image')
    goal.add_argument('image', help='image file (PNG, JPEG, ...; any size)')
    goal.add_argument('--namespace', default='robot_0', help='the robot (namespace)')
    goal.add_argument('--topic', default=names.GOAL_IMAGE_TOPIC,
                      help='relative to the namespace unless absolute')
    goal.add_argument('--timeout', type=float, default=10.0,
                      help='seconds to wait for a subscriber')
    goal.add_argument('--linger', type=float, default=1.0,
                      help='seconds to stay up after publishing')
    goal.set_defaults(handler=_send_goal)
    plots = commands.add_parser('report', help='PNG learning curves and goal grid of a run')
    plots.add_argument('run_dir')
    plots.set_defaults(handler=_report)
