"""RIG on the Visual Reacher learned through the ROS 2 graph from an empty run directory.

Per seed, three runs on the same budget of environment steps (exploration included) and the
same 20 evaluation goal images (`core.pipeline.evaluation_goals` of the seed):
- 'graph': `rig practice --steps` as a session (`run.session`): the learner explores (random
  end-effector velocities through the policy, frames stored), pretrains the VAE on those
  frames, broadcasts it and practises with imagined goals; nothing is trained outside the
  nodes. Evaluated by sending each goal image on `rig/goal_image` to the reach graph.
- 'finetune': the same with the learner's online VAE fine-tuning on (new VAE versions
  broadcast during practice).
- 'skewfit': the 'graph' run with Skew-Fit through the nodes' parameters (a params file):
  the learner pretrains its VAE on skewed minibatches and relabels with the replay's
  latents drawn by skewed weight, the goal scheduler imagines its seen frames' latents by
  skewed weight (alpha -1, the pusher benchmark's).
- 'inprocess': the reacher benchmark's `core.pipeline` run (bench/learning.py's
  `reacher_config`: 5,000 exploration images, 5,000 VAE steps, TD3 from RL step 4,000)
  evaluated after 5,000 RL steps, i.e. 10,000 environment steps in all, on the same goals.
  An existing run of exactly that configuration (bench/learning.py's or
  bench/goal_robustness.py's augmented one) is read back from its metrics.jsonl; otherwise
  it is run here with 5,000 RL steps.

Each run lives in `<out>/<mode>/seed<N>/<run>`; a finished run is read back, an interrupted
one resumes (the session and the learner resume their run directories). Prints one JSON line
last with the keys the checks read: graph_success_rate and graph_final_hand_distance_median
(pooled over seeds' goals), graph_env_steps_total (the largest over seeds),
inprocess_success_rate, finetune_success_rate, skewfit_success_rate, graph_wall_s (per seed
and stage); with
fine-tuning also the VAE versions reached, the transitions refused for their versions, and
the largest gap between the saved replay's latents and its frames encoded by the last VAE
(none: the replay never holds two versions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Any, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))
sys.path.insert(0, str(ROOT / 'bench'))

from learning import reacher_config  # noqa: E402
import numpy as np  # noqa: E402

from rig_ros.core.evaluation import METRICS_FILE, read_evaluations  # noqa: E402
from rig_ros.core.learner import REPLAY_FILE  # noqa: E402
from rig_ros.core.pipeline import PipelineConfig, RigPipeline  # noqa: E402
from rig_ros.core.vae import encode_images  # noqa: E402
from rig_ros.core.vae_training import read_vae_checkpoint  # noqa: E402
from rig_ros.run.domains import reserve_domain_id  # noqa: E402
from rig_ros.run.session import Session, SessionConfig  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Budget:
    """One seed's budget, the same for every run."""

    env_steps: int  # environment steps in all, exploration included
    explore_frames: int
    vae_steps: int
    learning_starts: int  # the graph's: stored transitions, the seeded exploration included
    updates_per_step: int
    eval_goals: int
    fine_tune_vae_every: int
    fine_tune_vae_steps: int
    episode_length: int = 50


# 10,000 environment steps in all (RIG's real-robot reaching budget): ~5,000 exploring, the
# rest practising. The session stops at the step budget less the overshoot of one learner
# status period (robots at ~40 steps/s, status every 0.5 s).
FULL = Budget(env_steps=9_950, explore_frames=5_000, vae_steps=5_000, learning_starts=5_000,
              updates_per_step=4, eval_goals=20, fine_tune_vae_every=1_000,
              fine_tune_vae_steps=200)
QUICK = Budget(env_steps=900, explore_frames=300, vae_steps=100, learning_starts=300,
               updates_per_step=1, eval_goals=3, fine_tune_vae_every=200,
               fine_tune_vae_steps=20)
# Runs of the in-process reference's configuration made by other benchmarks (per seed).
REFERENCE_RUNS = ('runs/bench_learning/{mode}/reacher_seed{seed}',
                  'runs/bench_goal_robustness/{mode}/seed{seed}/augmented')
RUNS = ('graph', 'finetune', 'inprocess', 'skewfit')
SKEW_ALPHA = -1.0  # bench/pushing.py's SKEW_FIT
SKEW_FIT_PARAMETERS = {
    '/**/learner': {'ros__parameters': {'imagined_goals': 'frames',
                                        'skew_fit': {'alpha': SKEW_ALPHA}}},
    '/**/goal_scheduler': {'ros__parameters': {'imagined_goals': 'frames',
                                               'skew_alpha': SKEW_ALPHA}}}


def session_config(budget: Budget, seed: int, fine_tune: bool,
                   params_file: Optional[str] = None) -> SessionConfig:
    """Return the graph session of a budget (fine_tune: online VAE fine-tuning on)."""
    return SessionConfig(
        params_file=params_file, task='reacher', seed=seed, steps=budget.env_steps,
        eval_goals=budget.eval_goals,
        episode_length=budget.episode_length, explore_frames=budget.explore_frames,
        vae_steps=budget.vae_steps, learning_starts=budget.learning_starts,
        updates_per_step=budget.updates_per_step,
        fine_tune_vae_every=budget.fine_tune_vae_every if fine_tune else 0,
        fine_tune_vae_steps=budget.fine_tune_vae_steps)


def pipeline_config(seed: int, quick: bool) -> PipelineConfig:
    """Return the in-process reference: the reacher benchmark's, stopped at its step 5,000."""
    config = reacher_config(seed, quick)
    return dataclasses.replace(config, rl_steps=config.collect_images,
                               checkpoint_every=config.eval_every)


def reference_evaluation(seed: int, quick: bool) -> Optional[dict[str, Any]]:
    """Return the evaluation at the reference's budget from another benchmark's run, if any.

    The run's config.json must be the reference's configuration (bar its RL budget) and hold
    an evaluation at rl_steps = collect_images (env steps = twice that).
    """
    config = reacher_config(seed, quick)
    mine = json.loads(json.dumps(dataclasses.asdict(config)))
    budget_fields = ('rl_steps', 'checkpoint_every', 'eval_every')
    for pattern in REFERENCE_RUNS:
        run_dir = ROOT / pattern.format(mode='quick' if quick else 'full', seed=seed)
        try:
            theirs = json.loads((run_dir / 'config.json').read_text())
        except (OSError, ValueError):
            continue
        if any(theirs.get(key) != value for key, value in mine.items()
               if key not in budget_fields):
            continue
        for record in read_evaluations(run_dir / METRICS_FILE):
            if record.rl_step == config.collect_images:
                row = record.to_row()
                row['source'] = str(run_dir)
                return row
    return None


def run_once(kind: str, budget: Budget, seed: int, run_dir: pathlib.Path) -> dict[str, Any]:
    """Return one run's result (read back when finished, else run or resumed)."""
    result_path = run_dir / 'bench_result.json'
    run_dir.mkdir(parents=True, exist_ok=True)
    if result_path.is_file():
        return json.loads(result_path.read_text())
    start = time.perf_counter()
    if kind == 'inprocess':
        quick = budget == QUICK
        result = reference_evaluation(seed, quick)
        if result is None:
            sim = SawyerSim(SawyerSimConfig(task='reacher', seed=seed))
            try:
                result = RigPipeline(sim, pipeline_config(seed, quick), run_dir).run()
            finally:
                sim.close()
        config = pipeline_config(seed, quick)
        result['env_steps_total'] = config.collect_images + result['rl_step']
    else:
        # env_steps_total: what the learner received, exploration included.
        params_file = None
        if kind == 'skewfit':
            params_file = run_dir / 'skew_fit.yaml'
            params_file.write_text(json.dumps(SKEW_FIT_PARAMETERS))  # JSON is YAML
        result = Session(session_config(budget, seed, kind == 'finetune',
                                        str(params_file) if params_file else None),
                         run_dir).run()
    result['bench_wall_s'] = time.perf_counter() - start
    if kind == 'finetune':
        result['replay_latent_error_max'] = replay_latent_error(run_dir)
    kept = {key: result[key] for key in (
        'rig_success_rate', 'rig_final_hand_distance_median', 'rig_hand_distances',
        'env_steps_total', 'stage_wall_s', 'bench_wall_s', 'rl_step',
        'replay_latent_error_max', 'source') if key in result}
    kept['learner'] = result.get('learner', {})
    result_path.write_text(json.dumps(kept, indent=2, sort_keys=True))
    return kept


def replay_latent_error(run_dir: pathlib.Path) -> float:
    """Return the largest gap between the saved replay's latents and its frames encoded now.

    The frames encoded by the run's last VAE (`vae.safetensors`): zero (float error) when every
    stored latent is of that one version, i.e. fine-tuning never left two versions mixed.
    """
    with np.load(run_dir / REPLAY_FILE, allow_pickle=False) as data:
        count = min(int(data['frames']), len(data['obs']))
        observations, images = data['obs'][:count], data['images'][:count]
    vae, _ = read_vae_checkpoint(run_dir)
    encoded = np.concatenate([encode_images(vae, images[i:i + 1024])[0]
                              for i in range(0, count, 1024)])
    return float(np.abs(encoded - observations).max())


def pooled(results: list[dict[str, Any]]) -> tuple[float, float]:
    """Return (success rate, median final hand distance) over every goal of the results."""
    distances = np.concatenate([np.asarray(r['rig_hand_distances'], float)
                                for r in results])
    return float(np.mean(distances < 0.05)), float(np.median(distances))


def main() -> int:
    """Run (or resume) every seed's runs and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='a smoke-sized budget')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--runs', default=','.join(RUNS),
                        help=f'comma-separated subset of {RUNS}')
    parser.add_argument('--out', default=str(ROOT / 'runs' / 'bench_graph_learning'))
    args = parser.parse_args()
    budget = QUICK if args.quick else FULL
    runs = [name for name in args.runs.split(',') if name]
    unknown = set(runs) - set(RUNS)
    if unknown:
        parser.error(f'unknown runs {sorted(unknown)}; choose from {RUNS}')
    out = pathlib.Path(args.out) / ('quick' if args.quick else 'full')
    # Its own ROS domain: another session on this machine (a second bench, a demo) would
    # otherwise read this one's learner status and switch its policies off.
    domain, lock = reserve_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    print(f'ROS_DOMAIN_ID {domain}', flush=True)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for seed in range(args.seeds):
        for name in runs:
            run_dir = out / f'seed{seed}' / name
            print(f'== seed {seed} {name}: {run_dir}', flush=True)
            result = run_once(name, budget, seed, run_dir)
            results[name].append(result)
            print(f"seed {seed} {name}: success {result['rig_success_rate']:.2f}, median "
                  f"{100 * result['rig_final_hand_distance_median']:.2f} cm, "
                  f"{result['env_steps_total']} env steps, {result['bench_wall_s']:.0f} s, "
                  f"stages {result.get('stage_wall_s')}", flush=True)
    figures: dict[str, Any] = {'seeds': args.seeds, 'quick': args.quick,
                               'budget': dataclasses.asdict(budget)}
    for name, prefix in (('graph', 'graph'), ('finetune', 'finetune'),
                         ('inprocess', 'inprocess'), ('skewfit', 'skewfit')):
        if not results.get(name):
            continue
        success, median = pooled(results[name])
        figures[f'{prefix}_success_rate'] = success
        figures[f'{prefix}_final_hand_distance_median'] = median
        figures[f'{prefix}_success_rate_per_seed'] = [
            r['rig_success_rate'] for r in results[name]]
        figures[f'{prefix}_env_steps_per_seed'] = [r['env_steps_total'] for r in results[name]]
    if results.get('graph'):
        figures['graph_env_steps_total'] = max(r['env_steps_total'] for r in results['graph'])
        figures['graph_wall_s'] = [
            {'total': r['bench_wall_s'], **r.get('stage_wall_s', {})} for r in results['graph']]
    if results.get('finetune'):
        figures['finetune_vae_versions'] = [
            r['learner'].get('vae_version') for r in results['finetune']]
        figures['finetune_refused'] = [
            {key: r['learner'].get(key, 0) for key in ('mixed', 'stale', 'ahead')}
            for r in results['finetune']]
        figures['finetune_replay_latent_error_max'] = max(
            r['replay_latent_error_max'] for r in results['finetune'])
    (out / 'figures.json').write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    lock.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
