"""`rig demo`: RIG on a simulated task, through the ROS 2 graph (default) or in process.

Both ways run one budget (`DEMO_BUDGET`; `QUICK_DEMO_BUDGET` for smoke tests): the same
exploration frames, VAE pretraining steps, practice steps, TD3 schedule and evaluation goals.
Through the graph every stage runs in the nodes (the learner explores, pretrains the VAE and
practises); in process, `core.pipeline` runs them in one loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from typing import TYPE_CHECKING

from rig_ros import report, tasks
from rig_ros.cli.pipeline import run_pipeline
from rig_ros.run.session import Session, SessionConfig

if TYPE_CHECKING:  # torch comes with it: `rig --help` stays quick
    from rig_ros.core.pipeline import PipelineConfig


@dataclasses.dataclass(frozen=True)
class DemoBudget:
    """The demo's budget (minutes on two cores), read by the graph and the in-process demo.

    collect_images, vae_steps: exploration (random-action frames) and VAE pretraining steps.
    rl_steps: practice steps with imagined goals (the graph's: over the whole fleet); the
        graph's step budget is collect_images + rl_steps, exploration included.
    learning_starts, updates_per_step: TD3's schedule.
    eval_goals, episode_length: evaluation goal images; steps of an episode and of an attempt.
    eval_every: evaluation and checkpoint period of the in-process demo; the graph demo
        evaluates once, after practice (each evaluation restarts its graphs).
    broadcast_every: the graph learner's weights broadcast period.
    """

    collect_images: int
    vae_steps: int
    rl_steps: int
    learning_starts: int
    updates_per_step: int
    eval_goals: int
    eval_every: int
    episode_length: int = 50
    broadcast_every: int = 200

    def pipeline_config(self, task: str, seed: int) -> PipelineConfig:
        """Return the in-process pipeline's settings for this budget."""
        from rig_ros.core.pipeline import PipelineConfig
        from rig_ros.core.td3 import TD3Config
        return PipelineConfig(
            task=task, seed=seed, collect_images=self.collect_images, vae_steps=self.vae_steps,
            rl_steps=self.rl_steps, td3=TD3Config(learning_starts=self.learning_starts,
                                                  updates_per_step=self.updates_per_step),
            eval_every=self.eval_every, checkpoint_every=self.eval_every,
            eval_goals=self.eval_goals, episode_length=self.episode_length)

    def session_config(self, task: str, seed: int) -> SessionConfig:
        """Return the graph session's settings for this budget."""
        return SessionConfig(
            task=task, seed=seed, steps=self.collect_images + self.rl_steps,
            explore_frames=self.collect_images,
            vae_steps=self.vae_steps, learning_starts=self.learning_starts,
            updates_per_step=self.updates_per_step, eval_goals=self.eval_goals,
            episode_length=self.episode_length, broadcast_every=self.broadcast_every)


DEMO_BUDGET = DemoBudget(collect_images=3000, vae_steps=2500, rl_steps=4000,
                         learning_starts=1000, updates_per_step=2, eval_goals=20,
                         eval_every=1000)
QUICK_DEMO_BUDGET = DemoBudget(collect_images=300, vae_steps=60, rl_steps=300,
                               learning_starts=100, updates_per_step=1, eval_goals=3,
                               eval_every=150, episode_length=30, broadcast_every=50)


def _demo(args: argparse.Namespace) -> int:
    budget = QUICK_DEMO_BUDGET if args.quick else DEMO_BUDGET
    progress = not args.no_progress
    if args.in_process:
        run_dir = pathlib.Path(args.run_dir or 'runs/demo_inprocess')
        print(f'RIG demo on the simulated {args.task}: collect {budget.collect_images} images, '
              f'{budget.vae_steps} VAE steps, {budget.rl_steps} RL steps -> {run_dir}')
        result = run_pipeline(budget.pipeline_config(args.task, args.seed), run_dir,
                              progress=progress)
    else:
        run_dir = pathlib.Path(args.run_dir or 'runs/demo')
        print(f'RIG demo through the ROS 2 graph on the simulated {args.task}: explore '
              f'{budget.collect_images} frames, pretrain the VAE ({budget.vae_steps} steps), '
              f'practise {budget.rl_steps} steps, evaluate {budget.eval_goals} goal images, all '
              f'in the nodes -> {run_dir}')
        result = Session(budget.session_config(args.task, args.seed), run_dir,
                         progress=progress).run()
    print(report.outcome_line(result, run_dir))
    return 0


def add_commands(commands: 'argparse._SubParsersAction[argparse.ArgumentParser]') -> None:
    """Add `demo` to the `rig` subcommands."""
    demo = commands.add_parser('demo', help='RIG practice on the simulated reacher, through '
                               'the ROS 2 graph (default) or in process')
    demo.add_argument('--task', default='reacher', choices=tasks.TASK_NAMES)
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
