"""`rig practice` and `rig reach`: the node graphs of `rig_ros.graph` as processes.

Their options are the launch files' arguments (`graph.PRACTICE_ARGUMENTS`,
`graph.REACH_ARGUMENTS`). `rig practice --steps N` runs a whole session instead
(`rig_ros.run.session`): explore, pretrain and practise in the graph, evaluate, report.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Iterable

from rig_ros import graph, report
from rig_ros.graph import GraphArgument, NodeSpec
from rig_ros.run import runner
from rig_ros.run.session import Session, SessionConfig


def _add_graph_arguments(parser: argparse.ArgumentParser,
                         arguments: Iterable[GraphArgument]) -> None:
    for argument in arguments:
        flag = '--' + argument.name.replace('_', '-')
        if argument.kind == 'bool':
            parser.add_argument(flag, dest=argument.name, action=argparse.BooleanOptionalAction,
                                default=argument.default, help=argument.description)
        else:
            parser.add_argument(flag, dest=argument.name,
                                type=int if argument.kind == 'int' else str,
                                default=argument.default, choices=argument.choices,
                                help=argument.description)
    parser.add_argument('--dry-run', action='store_true',
                        help='print the command line of every node and exit')
    parser.add_argument('--sigint-timeout', type=float, default=10.0,
                        help='seconds a node gets to exit after SIGINT before SIGTERM')


def add_practice_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `rig practice` graph options (the practice launch file's arguments)."""
    _add_graph_arguments(parser, graph.PRACTICE_ARGUMENTS)


def add_reach_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `rig reach` options (the reach launch file's arguments)."""
    _add_graph_arguments(parser, graph.REACH_ARGUMENTS)


def add_session_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of a practice session (`rig practice --steps N ...`)."""
    default = SessionConfig()
    parser.add_argument('--steps', type=int, default=None,
                        help='run the practice graph until the fleet has taken this many '
                             'steps (exploration included), then evaluate on goal images and '
                             'write a report into --run-dir (without it: run the graph until '
                             'Ctrl-C)')
    parser.add_argument('--vae-checkpoint', default='',
                        help='VAE file or run directory to practise with (default: the '
                             'learner explores and pretrains one)')
    parser.add_argument('--eval-goals', type=int, default=default.eval_goals)
    parser.add_argument('--eval-every', type=int, default=default.eval_every,
                        help='practice steps between evaluations (0: only at the end)')
    parser.add_argument('--episode-length', type=int, default=default.episode_length)
    parser.add_argument('--explore-frames', type=int, default=default.explore_frames,
                        help='exploration frames the learner keeps before pretraining the VAE')
    parser.add_argument('--vae-steps', type=int, default=default.vae_steps,
                        help='VAE pretraining minibatches')
    parser.add_argument('--fine-tune-vae-every', type=int,
                        default=default.fine_tune_vae_every,
                        help='stored transitions between online VAE fine-tuning rounds (0: '
                             'a frozen VAE)')
    parser.add_argument('--fine-tune-vae-until', type=int,
                        default=default.fine_tune_vae_until,
                        help='stored transitions after which the rounds stop and the VAE stays '
                             'as the last one left it (0: rounds to the end)')
    parser.add_argument('--learning-starts', type=int, default=default.learning_starts)
    parser.add_argument('--updates-per-step', type=int, default=default.updates_per_step)
    parser.add_argument('--no-progress', action='store_true')


def specs_from_args(graph_name: str, args: argparse.Namespace) -> list[NodeSpec]:
    """Build the named graph ('practice' or 'reach') from parsed command-line options."""
    function, arguments = graph.GRAPHS[graph_name]
    specs = function(**{argument.name: getattr(args, argument.name) for argument in arguments})
    graph.check_graph(specs)
    return specs


def config_from_args(args: argparse.Namespace) -> SessionConfig:
    """Build a SessionConfig from `rig practice` options."""
    return SessionConfig(
        task=args.task, seed=args.seed, steps=args.steps, eval_every=args.eval_every,
        eval_goals=args.eval_goals, episode_length=args.episode_length,
        vae_checkpoint=args.vae_checkpoint or '', explore_frames=args.explore_frames,
        vae_steps=args.vae_steps, fine_tune_vae_every=args.fine_tune_vae_every,
        fine_tune_vae_until=args.fine_tune_vae_until,
        learning_starts=args.learning_starts, updates_per_step=args.updates_per_step,
        robots=args.robots, params_file=args.params_file)


def _run_graph(graph_name: str, args: argparse.Namespace) -> int:
    return runner.run_graph(specs_from_args(graph_name, args),
                            sigint_timeout=args.sigint_timeout, dry_run=args.dry_run)


def _practice(args: argparse.Namespace) -> int:
    """`rig practice`: a session with --steps, else the practice graph until Ctrl-C."""
    if args.steps is None:
        return _run_graph('practice', args)
    if args.dry_run or args.nodes or not args.sim or args.namespace:
        raise ValueError('--steps runs a whole simulated session: it does not combine with '
                         '--dry-run, --nodes, --no-sim or --namespace')
    config = config_from_args(args)  # a bad setting is refused before anything is announced
    run_dir = pathlib.Path(args.run_dir or 'runs/practice').resolve()
    print(f'practice session in {run_dir}', flush=True)
    result = Session(config, run_dir, progress=not args.no_progress).run()
    print(report.outcome_line(result, run_dir))
    return 0


def _reach(args: argparse.Namespace) -> int:
    """`rig reach`: the reach graph until Ctrl-C or a node exits."""
    return _run_graph('reach', args)


def add_commands(commands: 'argparse._SubParsersAction[argparse.ArgumentParser]') -> None:
    """Add `practice` and `reach` to the `rig` subcommands."""
    practice = commands.add_parser('practice', help='the RIG practice graph over DDS; with '
                                   '--steps a whole session (explore, pretrain, practise, '
                                   'evaluate, report)')
    add_practice_arguments(practice)
    add_session_arguments(practice)
    practice.set_defaults(handler=_practice)
    reach = commands.add_parser('reach', help='reach goal images with a trained model')
    add_reach_arguments(reach)
    reach.set_defaults(handler=_reach)
