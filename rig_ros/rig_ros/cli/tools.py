"""Operators' tools: `rig send-goal`, `rig report` and `rig calibrate-tracker`.

An image file as a goal, PNG plots of a run, the puck tracker of aimed exploration pushes.
"""

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


def _calibrate_tracker(args: argparse.Namespace) -> int:
    return operator_tools.calibrate_tracker(args.out, args.task, args.frames, args.places,
                                            tuple(args.crop) if args.crop else None)


def add_commands(commands: 'argparse._SubParsersAction[argparse.ArgumentParser]') -> None:
    """Add `send-goal`, `report` and `calibrate-tracker` to the `rig` subcommands."""
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
    calibrate = commands.add_parser(
        'calibrate-tracker', help="calibrate the puck tracker of the policy's aimed "
        'exploration pushes (puck_tracker_file): in the simulator, or from photos on a robot')
    calibrate.add_argument('out', help='calibration file to write (JSON)')
    calibrate.add_argument('--task', default='pusher',
                           help='simulated task whose puck is rendered at 12 places')
    calibrate.add_argument('--frames', default=None,
                           help='a robot: folder of camera images of the puck, one per place')
    calibrate.add_argument('--places', default=None,
                           help="a robot: JSON list of each image's puck [x, y] (metres, the "
                                'frame of robot/state), in file name order')
    calibrate.add_argument('--crop', type=int, nargs=4, default=None,
                           metavar=('TOP', 'LEFT', 'HEIGHT', 'WIDTH'),
                           help="camera_pipeline's crop, if it has one")
    calibrate.set_defaults(handler=_calibrate_tracker)
