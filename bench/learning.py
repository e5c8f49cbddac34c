"""RIG learning benchmark: Visual Reacher over seeds against a state-based oracle and random.

Every method of a seed is evaluated on the same goals (goal images rendered at goal states for
RIG, the goal states themselves for the oracle). Also a Visual Pusher run at a budget this
2-core CPU affords. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))

from rig_ros import report  # noqa: E402
from rig_ros.core.oracle import oracle_figures  # noqa: E402
from rig_ros.core.pipeline import (  # noqa: E402
    check_run_config, evaluate_random, evaluation_goals, PipelineConfig, RigPipeline)
from rig_ros.core.td3 import TD3Config  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402


def reacher_config(seed: int, quick: bool) -> PipelineConfig:
    """RIG on the Visual Reacher: 10K RL steps (quick: a smoke-sized budget)."""
    if quick:
        return PipelineConfig(task='reacher', seed=seed, collect_images=500, vae_steps=200,
                              rl_steps=1000, td3=TD3Config(learning_starts=300,
                                                           updates_per_step=1),
                              eval_every=500, checkpoint_every=500, eval_goals=5)
    return PipelineConfig(task='reacher', seed=seed)


def pusher_config(seed: int, quick: bool, rl_steps: int) -> PipelineConfig:
    """RIG on the Visual Pusher at an affordable budget."""
    base = reacher_config(seed, quick)
    return dataclasses.replace(
        base, task='pusher', rl_steps=base.rl_steps if quick else rl_steps,
        eval_every=base.eval_every if quick else rl_steps // 4,
        checkpoint_every=base.checkpoint_every if quick else rl_steps // 4)


def run_task(config: PipelineConfig, run_dir: pathlib.Path) -> dict:
    """RIG, the oracle and a random policy on the same evaluation goals of one seed.

    A seed whose figures are already in its run directory (same configuration: the pipeline
    refuses another) is read back, not run again; an interrupted one resumes.
    """
    figures_path = run_dir / 'bench_seed.json'
    if check_run_config(run_dir, config) and figures_path.exists():
        return json.loads(figures_path.read_text())
    sim = SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed))
    try:
        rig = RigPipeline(sim, config, run_dir).run()
        # Summed over sessions: an interrupted and resumed seed counts all the time it took.
        pipeline_wall_s = rig['wall_s']
        goals = evaluation_goals(sim, config.eval_goals, config.seed)
        oracle = oracle_figures(sim, config, goals)
        random = evaluate_random(sim, config, goals)
    finally:
        sim.close()
    figures = {'rig': rig, 'oracle': oracle, 'random': random.summary('random'),
               'random_hand_distances': random.hand_distance,
               'pipeline_wall_s': pipeline_wall_s}
    figures_path.write_text(json.dumps(figures))
    return figures


def pooled(results: list[dict], key: str, curve_index: int = -1) -> np.ndarray:
    """Per-goal distances of every seed at one evaluation point."""
    return np.concatenate([r['rig']['curve'][curve_index][key] for r in results])


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--pusher-rl-steps', type=int, default=20_000)
    parser.add_argument('--skip-pusher', action='store_true')
    parser.add_argument('--out', default=str(ROOT / 'runs' / 'bench_learning'))
    args = parser.parse_args()
    # One thread: two threads spin against each other and everything else on a busy 2-core box.
    torch.set_num_threads(1)
    out = pathlib.Path(args.out) / ('quick' if args.quick else 'full')
    out.mkdir(parents=True, exist_ok=True)

    reacher = []
    for seed in range(args.seeds):
        config = reacher_config(seed, args.quick)
        print(f'== reacher seed {seed}', flush=True)
        reacher.append(run_task(config, out / f'reacher_seed{seed}'))
    config = reacher_config(0, args.quick)
    threshold = config.success_threshold_m
    final = pooled(reacher, 'rig_hand_distances')
    oracle_success = float(np.mean([r['oracle']['oracle_success_rate'] for r in reacher]))
    figures = {
        'rig_success_rate': float(np.mean(final < threshold)),
        'rig_final_hand_distance_median': float(np.median(final)),
        'rig_final_hand_distance_mean': float(np.mean(final)),
        'rig_success_rate_per_seed': [r['rig']['rig_success_rate'] for r in reacher],
        'oracle_success_rate': oracle_success,
        'oracle_final_hand_distance_median': float(np.median(
            [r['oracle']['oracle_final_hand_distance_median'] for r in reacher])),
        'random_final_hand_distance_median': float(np.median(
            np.concatenate([r['random_hand_distances'] for r in reacher]))),
        'pipeline_wall_s': reacher[0]['pipeline_wall_s'],
        'stage_wall_s': reacher[0]['rig']['stage_wall_s'],
        'oracle_wall_s_per_seed': [r['oracle']['oracle_wall_s'] for r in reacher],
        'goals_per_seed': config.eval_goals, 'seeds': args.seeds, 'rl_steps': config.rl_steps,
        'collect_images': config.collect_images,
    }
    # A real robot's budget: 10K environment steps in total, collection included.
    budget = 10_000 - config.collect_images
    at_budget = [i for i, p in enumerate(reacher[0]['rig']['curve']) if p['rl_step'] == budget]
    if at_budget:
        hand = pooled(reacher, 'rig_hand_distances', at_budget[0])
        figures['rig_at_10k_total_env_steps_success_rate'] = float(np.mean(hand < threshold))
        figures['rig_at_10k_total_env_steps_hand_distance_median'] = float(np.median(hand))
    report.plot_learning_curves(
        {f'seed {r["rig"]["seed"]}': r['rig']['curve'] for r in reacher},
        out / 'reacher_learning_curve.png', 'RIG, Visual Reacher (simulated Sawyer)',
        references={'oracle (median)': figures['oracle_final_hand_distance_median'],
                    'random (median)': figures['random_final_hand_distance_median']})

    if not args.skip_pusher:
        print('== pusher seed 0', flush=True)
        pusher = run_task(pusher_config(0, args.quick, args.pusher_rl_steps),
                          out / 'pusher_seed0')
        figures.update({
            'pusher_rl_steps': pusher['rig']['curve'][-1]['rl_step'],
            **{f'pusher_{k}': v for k, v in pusher['rig'].items()
               if k.startswith('rig_') and isinstance(v, float)},
            **{f'pusher_{k}': v for k, v in pusher['oracle'].items()},
            **{f'pusher_{k}': v for k, v in pusher['random'].items()},
        })
    (out / 'figures.json').write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
