"""RIG on the Visual Reacher through the ROS 2 graph, against the in-process pipeline.

Same seed, same PipelineConfig budget as bench/learning.py's reacher (10K RL steps, 4000
before learning, 4 updates per step; --quick: its smoke budget), same evaluation goals. The
graph run reuses the in-process run's VAE (its run directory is reused when it is already
there, e.g. from bench/learning.py), so only RL differs: acting, transitions and weights
through DDS and asynchronous learner updates instead of a single loop. Prints one JSON line
last.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))
sys.path.insert(0, str(ROOT / 'bench'))

from learning import reacher_config  # noqa: E402

from rig_ros import report  # noqa: E402
from rig_ros.core.pipeline import PipelineConfig, RigPipeline  # noqa: E402
from rig_ros.run.session import Session, SessionConfig  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402


def inprocess_result(config: PipelineConfig, run_dir: pathlib.Path) -> dict:
    """Return the in-process result in `run_dir` (run, or resumed, when not there)."""
    result_path = run_dir / 'result.json'
    if result_path.is_file():
        return json.loads(result_path.read_text())
    sim = SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed))
    try:
        return RigPipeline(sim, config, run_dir).run()
    finally:
        sim.close()


def session_config(config: PipelineConfig, vae_checkpoint: str,
                   eval_every: int) -> SessionConfig:
    """Return the graph session with the pipeline's RL budget, goals and TD3 schedule."""
    return SessionConfig(
        task=config.task, seed=config.seed, steps=config.rl_steps, eval_every=eval_every,
        eval_goals=config.eval_goals, episode_length=config.episode_length,
        success_threshold_m=config.success_threshold_m, vae_checkpoint=vae_checkpoint,
        learning_starts=config.td3.learning_starts,
        updates_per_step=config.td3.updates_per_step, batch_size=config.td3.batch_size)


def main() -> int:
    """Run (or resume) both and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-every', type=int, default=None,
                        help='graph practice steps between evaluations (default: 5000; quick: '
                             'only at the end)')
    parser.add_argument('--inprocess-run-dir', default=None,
                        help="the in-process run to compare with (default: bench/learning.py's "
                             'finished run of the seed, else one made in --out)')
    parser.add_argument('--out', default=str(ROOT / 'runs' / 'bench_graph_learning'))
    args = parser.parse_args()
    mode = 'quick' if args.quick else 'full'
    out = pathlib.Path(args.out) / mode
    out.mkdir(parents=True, exist_ok=True)
    config = reacher_config(args.seed, args.quick)
    inprocess_dir = pathlib.Path(args.inprocess_run_dir) if args.inprocess_run_dir else (
        ROOT / 'runs' / 'bench_learning' / mode / f'reacher_seed{args.seed}')
    if not args.inprocess_run_dir and not (inprocess_dir / 'result.json').is_file():
        inprocess_dir = out / 'inprocess'

    print(f'== in-process pipeline: {inprocess_dir}', flush=True)
    inprocess = inprocess_result(config, inprocess_dir)
    eval_every = args.eval_every if args.eval_every is not None else (
        0 if args.quick else 5000)
    print(f'== graph: {config.rl_steps} steps through the ROS 2 graph -> {out / "graph"}',
          flush=True)
    start = time.perf_counter()
    graph = Session(session_config(config, str(inprocess_dir / 'vae.safetensors'),
                                   eval_every), out / 'graph').run()
    graph_wall_s = time.perf_counter() - start

    figures = {
        'graph_rig_success_rate': graph['rig_success_rate'],
        'graph_rig_final_hand_distance_median': graph['rig_final_hand_distance_median'],
        'graph_rig_final_hand_distance_mean': graph['rig_final_hand_distance_mean'],
        'inprocess_rig_success_rate': inprocess['rig_success_rate'],
        'inprocess_rig_final_hand_distance_median': inprocess['rig_final_hand_distance_median'],
        'inprocess_rig_final_hand_distance_mean': inprocess['rig_final_hand_distance_mean'],
        'graph_steps': graph['rl_step'],
        'graph_updates': graph.get('updates'),
        'graph_wall_s': graph_wall_s,
        'graph_stage_wall_s': graph['stage_wall_s'],
        'graph_practice_steps_per_s': graph['rl_step'] / graph['stage_wall_s']['practice'],
        'inprocess_rl_steps': inprocess['rl_step'],
        'graph_initial_hand_distance_median': float(sorted(
            graph['initial_hand_distances'])[len(graph['initial_hand_distances']) // 2]),
        'eval_goals': config.eval_goals, 'seed': args.seed, 'quick': args.quick,
        'learning_starts': config.td3.learning_starts,
        'updates_per_step': config.td3.updates_per_step,
    }
    report.plot_learning_curves(
        {'graph': graph['curve'], 'in process': inprocess['curve']},
        out / 'graph_vs_inprocess.png', 'RIG on the Visual Reacher: graph vs in process')
    (out / 'figures.json').write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
