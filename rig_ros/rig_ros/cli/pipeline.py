"""`rig pipeline`: the full in-process RIG pipeline (collect, VAE, RL, evaluate) without ROS."""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any, TYPE_CHECKING

from rig_ros import report, tasks

if TYPE_CHECKING:  # torch comes with it: `rig --help` stays quick
    from rig_ros.core.pipeline import PipelineConfig


def run_pipeline(config: PipelineConfig, run_dir: pathlib.Path,
                 progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the in-process pipeline and write its report next to it."""
    from rig_ros.core.pipeline import RigPipeline
    from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig
    sim = SawyerSim(SawyerSimConfig(**config.sim_options()))
    try:
        result = RigPipeline(sim, config, run_dir, progress=progress).run()
    finally:
        sim.close()
    report.plot_learning_curves({f'seed {config.seed}': result['curve']},
                                run_dir / 'learning_curve.png',
                                f'RIG on the simulated {config.task}')
    report.write_summary(result, run_dir / 'report.md')
    return result


def _pipeline(args: argparse.Namespace) -> int:
    from rig_ros.core.pipeline import PipelineConfig
    values = json.loads(pathlib.Path(args.config).read_text()) if args.config else {}
    values.update(task=args.task, seed=args.seed)
    config = PipelineConfig.from_dict(values)
    result = run_pipeline(config, pathlib.Path(args.run_dir), progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != 'curve'}))
    return 0


def add_commands(commands: 'argparse._SubParsersAction[argparse.ArgumentParser]') -> None:
    """Add `pipeline` to the `rig` subcommands."""
    pipeline = commands.add_parser('pipeline', help='the full in-process RIG pipeline')
    pipeline.add_argument('--task', default='reacher', choices=tasks.TASK_NAMES)
    pipeline.add_argument('--seed', type=int, default=0)
    pipeline.add_argument('--config', help='JSON file of PipelineConfig fields')
    pipeline.add_argument('--run-dir', required=True)
    pipeline.add_argument('--no-progress', action='store_true')
    pipeline.set_defaults(handler=_pipeline)
