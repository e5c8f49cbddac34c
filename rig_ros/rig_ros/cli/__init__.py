"""The `rig` command: all of its argument parsing, one module per command group.

Each module adds its subcommands and hands plain values to the code that does the work:
`demo` (`rig demo`), `pipeline` (`rig pipeline`), `graph` (`rig practice`, `rig reach`),
`tools` (`rig send-goal`, `rig report`). `python -m rig_ros.cli` runs it too.
"""

from __future__ import annotations

import argparse
import sys

from rig_ros.cli import demo, graph, pipeline, tools

DESCRIPTION = '`rig` commands: demo (RIG on the simulated reacher), pipeline, practice, reach.'


def build_parser() -> argparse.ArgumentParser:
    """Build the `rig` argument parser."""
    parser = argparse.ArgumentParser(prog='rig', description=DESCRIPTION)
    commands = parser.add_subparsers(dest='command', required=True)
    for group in (demo, pipeline, graph, tools):
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `rig`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print('interrupted; run again with the same --run-dir to resume', file=sys.stderr)
        return 130
    except ValueError as error:
        print(f'rig: {error}', file=sys.stderr)
        return 2
