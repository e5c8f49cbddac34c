"""`rig` commands: demo (RIG on the simulated reacher), pipeline, practice, reach."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from rig_ros import report


def demo_config(task: str, seed: int, quick: bool) -> 'PipelineConfig':  # noqa: F821
    """Return the demo's short budget (minutes on two cores); `quick` is for smoke tests."""
    from rig_ros.core.pipeline import PipelineConfig
    from rig_ros.core.td3 import TD3Config
    if quick:
        return PipelineConfig(
            task=task, seed=seed, collect_images=300, vae_steps=60, rl_steps=300,
            td3=TD3Config(learning_starts=100, updates_per_step=1), eval_every=150,
            checkpoint_every=150, eval_goals=3, episode_length=30)
    return PipelineConfig(
        task=task, seed=seed, collect_images=3000, vae_steps=2500, rl_steps=4000,
        td3=TD3Config(learning_starts=1000, updates_per_step=2), eval_every=1000,
        checkpoint_every=1000, eval_goals=20)


def run_pipeline(config: 'PipelineConfig', run_dir: pathlib.Path,  # noqa: F821
                 progress: bool = True) -> dict:
    """Run (or resume) the in-process pipeline and write its report next to it."""
    from rig_ros.core.pipeline import RigPipeline
    from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig
    sim = SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed))
    try:
        result = RigPipeline(sim, config, run_dir, progress=progress).run()
    finally:
        sim.close()
    report.plot_learning_curves({f'seed {config.seed}': result['curve']},
                                run_dir / 'learning_curve.png',
                                f'RIG on the simulated {config.task}')
    report.write_summary(result, run_dir / 'report.md')
    return result


def _demo(args: argparse.Namespace) -> int:
    if not args.in_process:
        from rig_ros.run import session
        return session.run_demo(args.task, args.seed, pathlib.Path(args.run_dir or 'runs/demo'),
                                args.quick, progress=not args.no_progress)
    config = demo_config(args.task, args.seed, args.quick)
    run_dir = pathlib.Path(args.run_dir or 'runs/demo_inprocess')
    print(f'RIG demo on the simulated {args.task}: collect {config.collect_images} images, '
          f'{config.vae_steps} VAE steps, {config.rl_steps} RL steps -> {run_dir}')
    result = run_pipeline(config, run_dir, progress=not args.no_progress)
    print(f"success rate {result['rig_success_rate']:.2f}, median final hand distance "
          f"{100 * result['rig_final_hand_distance_median']:.1f} cm, "
          f"wall {result['wall_s']:.0f} s; report: {run_dir / 'report.md'}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from rig_ros.core.pipeline import PipelineConfig
    values = json.loads(pathlib.Path(args.config).read_text()) if args.config else {}
    values.update(task=args.task, seed=args.seed)
    config = PipelineConfig.from_dict(values)
    result = run_pipeline(config, pathlib.Path(args.run_dir), progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != 'curve'}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the `rig` argument parser."""
    parser = argparse.ArgumentParser(prog='rig', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True)

    demo = commands.add_parser('demo', help='RIG practice on the simulated reacher, through '
                               'the ROS 2 graph (default) or in process')
    demo.add_argument('--task', default='reacher', choices=['reacher', 'pusher', 'multi_pusher'])
    demo.add_argument('--seed', type=int, default=0)
    demo.add_argument('--run-dir', default=None,
                      help='default: runs/demo (graph), runs/demo_inprocess (--in-process)')
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument('--graph', dest='in_process', action='store_false',
                      help='practise through the ROS 2 graph (the default)')
    mode.add_argument('--in-process', dest='in_process', action='store_true',
                      help='the whole pipeline in this process, without ROS')
    demo.set_defaults(in_process=False)
    demo.add_argument('--quick', action='store_true', help='a tiny budget (smoke test)')
    demo.add_argument('--no-progress', action='store_true')
    demo.set_defaults(handler=_demo)

    pipeline = commands.add_parser('pipeline', help='the full in-process RIG pipeline')
    pipeline.add_argument('--task', default='reacher', choices=['reacher', 'pusher',
                                                                'multi_pusher'])
    pipeline.add_argument('--seed', type=int, default=0)
    pipeline.add_argument('--config', help='JSON file of PipelineConfig fields')
    pipeline.add_argument('--run-dir', required=True)
    pipeline.add_argument('--no-progress', action='store_true')
    pipeline.set_defaults(handler=_pipeline)

    try:
        from rig_ros.run import runner
    except ImportError:  # the graph runner lands with the ROS graph
        runner = None
    if runner is not None:
        from rig_ros.run import session
        practice = commands.add_parser('practice', help='the RIG practice graph over DDS; '
                                       'with --steps a whole session (pretrain, practise, '
                                       'evaluate, report)')
        runner.add_practice_arguments(practice)
        session.add_session_arguments(practice)
        practice.set_defaults(handler=session.run_practice_command)
        reach = commands.add_parser('reach', help='reach goal images with a trained model')
        runner.add_reach_arguments(reach)
        reach.set_defaults(handler=runner.run_reach)
    from rig_ros.run import operator_tools
    operator_tools.add_commands(commands)
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


if __name__ == '__main__':
    sys.exit(main())
