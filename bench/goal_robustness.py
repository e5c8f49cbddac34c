"""Goal robustness benchmark: RIG's reacher when the light or the camera changes.

Per seed, the reacher benchmark's pipeline (bench/learning.py's budget) is run twice: with the
plain VAE and with the augmented one (core.vae.AugmentationConfig); the rest is the same. Each
model then reaches the same 20 goal images, rendered at goal states, under these changes of
the raw camera frame (84x84, before preprocessing):

- light xF: pixel values multiplied by F and clipped to [0, 255] (an image change, not a
  MuJoCo light change);
- shift 4 px: the frame translated by 4 pixels, borders filled by repeating the edge pixels
  (an image change, not a camera pose change); goal i is shifted right, down, left, up for
  i mod 4 = 0, 1, 2, 3.

applied (a) to the goal image alone ('goal') and (b) to the goal image and every observation
of the evaluation rollout ('both'). `--vae-only` instead trains candidate VAEs on seed 0's
exploration images and measures, without RL, how far the latent arg-min over a grid of clean
hand positions lands from a changed goal's true position (the variant choice).

Run directories under runs/bench_goal_robustness/{quick,full}/seed<N>/<variant>; a finished
part is read back, an interrupted pipeline resumes. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pathlib
import shutil
import sys
import time
from typing import Callable, Optional

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))
sys.path.insert(0, str(ROOT / 'bench'))

from rig_ros.core import checkpoints  # noqa: E402
from rig_ros.core.actor import Actor, GoalPolicy  # noqa: E402
from rig_ros.core.evaluation import Evaluation  # noqa: E402
from rig_ros.core.pipeline import (  # noqa: E402
    evaluation_goals, LatentObserver, make_vae, PipelineConfig, RigPipeline, rollout_to_goal)
from rig_ros.core.vae import AugmentationConfig, ConvVAE, VAETrainer  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402

# The reacher benchmark's budgets, from its own module (bench/learning.py).
reacher_config: Callable[[int, bool], PipelineConfig] = importlib.import_module(
    'learning').reacher_config

Frame = np.ndarray
Transform = Callable[[Frame, int], Frame]  # (raw frame, goal index) -> changed frame

# The VAE variants: 'plain' and 'augmented' are the benchmark's pair, the others the
# candidates measured before choosing 'augmented' (docs/results.md).
VARIANTS: dict[str, AugmentationConfig] = {
    'plain': AugmentationConfig(enabled=False),
    'augmented': AugmentationConfig(enabled=True),
    'aug_target': AugmentationConfig(enabled=True, target='augmented'),
    'aug_consistency': AugmentationConfig(enabled=True, consistency_weight=10.0),
}
SHIFT_PX = 4
# (rows, cols) per goal index mod 4: right, down, left, up.
SHIFT_DIRECTIONS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def light(factor: float) -> Transform:
    """Return a transform multiplying pixel values by `factor`, clipped to [0, 255]."""
    def change(frame: Frame, index: int) -> Frame:
        return np.clip(np.rint(frame.astype(np.float32) * factor), 0, 255).astype(np.uint8)
    return change


def shift_frame(frame: Frame, rows: int, cols: int) -> Frame:
    """Translate a frame by (rows, cols) pixels, filling the borders with the edge pixels."""
    height, width = frame.shape[:2]
    row_index = np.clip(np.arange(height) - rows, 0, height - 1)
    col_index = np.clip(np.arange(width) - cols, 0, width - 1)
    return np.ascontiguousarray(frame[row_index][:, col_index])


def shift(pixels: int) -> Transform:
    """Return a transform shifting goal i's frames by `pixels` in direction i mod 4."""
    def change(frame: Frame, index: int) -> Frame:
        rows, cols = SHIFT_DIRECTIONS[index % len(SHIFT_DIRECTIONS)]
        return shift_frame(frame, rows * pixels, cols * pixels)
    return change


CONDITIONS: dict[str, Transform] = {
    'light_0.8': light(0.8),
    'light_1.2': light(1.2),
    f'shift_{SHIFT_PX}px': shift(SHIFT_PX),
}
MODES = ('goal', 'both')


def variant_config(seed: int, quick: bool, variant: str) -> PipelineConfig:
    """Return the reacher benchmark's configuration with the variant's VAE augmentation."""
    config = reacher_config(seed, quick)
    return dataclasses.replace(config, vae=dataclasses.replace(
        config.vae, augmentation=VARIANTS[variant]))


def load_policy(run_dir: pathlib.Path) -> GoalPolicy:
    """Load the actor of a finished pipeline run (it acts without noise when asked to)."""
    state = checkpoints.load_checkpoint(run_dir / 'rl.safetensors').modules['actor']
    return GoalPolicy(Actor.from_state_dict(state))


def evaluate_changed(env: SawyerSim, policy: GoalPolicy, observer: LatentObserver,
                     config: PipelineConfig, goal_states: np.ndarray,
                     goal_change: Optional[Transform],
                     observation_change: Optional[Transform]) -> Evaluation:
    """Reach each goal as core.pipeline.evaluate_rig does, with changed goal/observed frames."""
    def changed(change: Optional[Transform], frame: Frame, index: int) -> Frame:
        return frame if change is None else change(frame, index)

    results = []
    for index, goal_state in enumerate(goal_states):
        env.reset(seed=index)
        raw_goal = env.render_goal(goal_state, config.raw_height, config.raw_width)
        goal = observer.observe(changed(goal_change, raw_goal, index))[1]
        latent = {}

        def observe(index: int = index) -> None:
            raw = env.render(config.raw_height, config.raw_width)
            latent['z'] = observer.observe(changed(observation_change, raw, index))[1]

        results.append(rollout_to_goal(
            env, lambda: policy.act(latent['z'], goal, explore=False), config.episode_length,
            goal_state, reset_seed=index, before_step=observe))
    return Evaluation.from_results(results, config.success_threshold_m)


def _write(path: pathlib.Path, values: dict) -> None:
    temporary = path.with_suffix('.tmp')
    temporary.write_text(json.dumps(values, indent=1))
    temporary.replace(path)


# What the exploration images depend on (core.pipeline.collect_images).
COLLECTION_FIELDS = ('task', 'seed', 'raw_height', 'raw_width', 'crop', 'image_size',
                     'collect_images', 'collect_episode_length')


def share_images(config: PipelineConfig, run_dir: pathlib.Path,
                 log: Callable[[str], None]) -> None:
    """Copy the exploration images of another variant of the same seed, if it has them.

    Collection does not depend on the VAE, so every variant of a seed starts from the same
    images (and the collection is paid once).
    """
    target = run_dir / 'images.npz'
    if target.exists():
        return
    for other in sorted(run_dir.parent.glob('*/images.npz')):
        saved = PipelineConfig.from_dict(json.loads((other.parent / 'config.json').read_text()))
        if all(getattr(saved, name) == getattr(config, name) for name in COLLECTION_FIELDS):
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(other, run_dir / 'images.tmp')
            (run_dir / 'images.tmp').replace(target)
            log(f'images of {other.parent.name} copied to {run_dir}')
            return


def run_variant(seed: int, quick: bool, variant: str, run_dir: pathlib.Path,
                log: Callable[[str], None]) -> dict:
    """Run (or resume) one seed's pipeline for a variant, then every change; figures per cell.

    Each evaluated cell is saved to robustness.json at once, so a restart skips it.
    """
    config = variant_config(seed, quick, variant)
    figures_path = run_dir / 'robustness.json'
    figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    cells = ['unchanged'] + [f'{name}/{mode}' for name in CONDITIONS for mode in MODES]
    if all(cell in figures for cell in cells):
        return figures
    share_images(config, run_dir, log)
    sim = SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed))
    try:
        pipeline = RigPipeline(sim, config, run_dir, progress=False, log=log)
        result = pipeline.run()
        figures['pipeline'] = {key: result[key] for key in (
            'rig_success_rate', 'rig_final_hand_distance_median', 'wall_s', 'stage_wall_s')}
        observer = LatentObserver(pipeline.vae(), config.preprocess_config)
        policy = load_policy(run_dir)
        goals = evaluation_goals(sim, config.eval_goals, config.seed)
        for cell in cells:
            if cell in figures:
                continue
            start = time.perf_counter()
            if cell == 'unchanged':
                goal_change = observation_change = None
            else:
                name, mode = cell.split('/')
                goal_change = CONDITIONS[name]
                observation_change = goal_change if mode == 'both' else None
            result_cell = evaluate_changed(sim, policy, observer, config, goals, goal_change,
                                           observation_change)
            figures[cell] = {**result_cell.summary('rig'),
                             'hand_distances': result_cell.hand_distance,
                             'wall_s': time.perf_counter() - start}
            _write(figures_path, figures)
            log(f'seed {seed} {variant} {cell}: success {result_cell.success_rate:.2f}, '
                f'median {np.median(result_cell.hand_distance) * 100:.2f} cm')
    finally:
        sim.close()
    return figures


def pooled_cell(per_seed: list[dict], cell: str, threshold: float) -> dict:
    """Success and median final hand distance of one cell over every seed's goals."""
    distances = np.concatenate([figures[cell]['hand_distances'] for figures in per_seed])
    return {'success': float(np.mean(distances < threshold)),
            'median_m': float(np.median(distances)),
            'success_per_seed': [figures[cell]['rig_success_rate'] for figures in per_seed],
            'median_m_per_seed': [figures[cell]['rig_final_hand_distance_median']
                                  for figures in per_seed]}


def grid_errors(vae: ConvVAE, config: PipelineConfig, grid: int = 25) -> dict:
    """Latent arg-min error (metres) of changed goal images over a grid of clean positions."""
    observer = LatentObserver(vae, config.preprocess_config)
    with SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed)) as sim:
        low, high = sim.config.workspace_low, sim.config.workspace_high
        xs = np.linspace(low[0] + 0.01, high[0] - 0.01, grid)
        ys = np.linspace(low[1] + 0.01, high[1] - 0.01, grid)
        positions = np.array([(x, y) for x in xs for y in ys])
        raw = [sim.render_goal(p, config.raw_height, config.raw_width) for p in positions]
        goals = evaluation_goals(sim, 20, config.seed)
        raw_goals = [sim.render_goal(g, config.raw_height, config.raw_width) for g in goals]
    reference = observer.encode(np.stack([observer.image(frame) for frame in raw]))
    errors = {}
    for name, change in {'unchanged': None, **CONDITIONS}.items():
        frames = [frame if change is None else change(frame, i)
                  for i, frame in enumerate(raw_goals)]
        latents = observer.encode(np.stack([observer.image(frame) for frame in frames]))
        nearest = np.linalg.norm(latents[:, None] - reference[None], axis=-1).argmin(1)
        error = np.linalg.norm(positions[nearest] - goals[:, :2], axis=-1)
        errors[name] = {'median_m': float(np.median(error)), 'max_m': float(np.max(error))}
    return errors


def vae_only(variants: list[str], quick: bool, out: pathlib.Path,
             log: Callable[[str], None]) -> dict:
    """Train each variant's VAE on seed 0's images; the latent arg-min errors per change."""
    plain_dir = out / 'seed0' / 'plain'
    config = variant_config(0, quick, 'plain')
    with SawyerSim(SawyerSimConfig(task=config.task, seed=config.seed)) as sim:
        images = RigPipeline(sim, config, plain_dir, progress=False, log=log).images()
    results = {}
    for variant in variants:
        path = out / 'vae_only' / f'{variant}.json'
        if path.exists():
            results[variant] = json.loads(path.read_text())
            continue
        config = variant_config(0, quick, variant)
        start = time.perf_counter()
        vae = make_vae(config)
        pipeline_vae = out / 'seed0' / variant / 'vae.safetensors'
        if pipeline_vae.exists():  # the benchmark's own pipeline trained it already
            vae.load_state_dict(checkpoints.load_checkpoint(pipeline_vae).modules['vae'])
            holdout = None
        else:
            history = VAETrainer(vae, config.vae).fit(images, config.vae_steps, progress=False)
            holdout = history[-1].get('holdout_recon')
        vae.eval()
        train_s = time.perf_counter() - start
        results[variant] = {'grid': grid_errors(vae, config), 'train_s': train_s,
                            'holdout_recon': holdout}
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, results[variant])
        log(f'{variant}: {json.dumps(results[variant])}')
    return results


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--variants', default='plain,augmented',
                        help=f'comma-separated, of {sorted(VARIANTS)}')
    parser.add_argument('--vae-only', action='store_true',
                        help="train the variants' VAEs on seed 0 and measure latents only")
    parser.add_argument('--out', default=str(ROOT / 'runs' / 'bench_goal_robustness'))
    args = parser.parse_args()
    torch.set_num_threads(1)  # as bench/learning.py: one thread on a busy 2-core box
    out = pathlib.Path(args.out) / ('quick' if args.quick else 'full')
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / 'progress.log'
    variants = args.variants.split(',')
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f'unknown variants {unknown}')

    def log(message: str) -> None:
        line = f'{time.strftime("%H:%M:%S")} {message}'
        print(line, flush=True)
        with log_path.open('a') as stream:
            stream.write(line + '\n')

    if args.vae_only:
        print(json.dumps(vae_only(variants, args.quick, out, log)))
        return 0
    per_variant: dict[str, list[dict]] = {variant: [] for variant in variants}
    for seed in range(args.seeds):
        for variant in variants:
            log(f'== seed {seed} {variant}')
            per_variant[variant].append(run_variant(
                seed, args.quick, variant, out / f'seed{seed}' / variant, log))
    threshold = reacher_config(0, args.quick).success_threshold_m
    changed = [f'{name}/{mode}' for name in CONDITIONS for mode in MODES]
    figures: dict = {'seeds': args.seeds, 'goals_per_seed': reacher_config(0, args.quick)
                     .eval_goals, 'rl_steps': reacher_config(0, args.quick).rl_steps}
    for variant, per_seed in per_variant.items():
        cells = {cell: pooled_cell(per_seed, cell, threshold)
                 for cell in ['unchanged'] + changed}
        label = variant
        figures[label] = cells
        figures[f'{label}_success_unchanged'] = cells['unchanged']['success']
        figures[f'{label}_median_unchanged_m'] = cells['unchanged']['median_m']
        figures[f'{label}_success_min'] = min(cells[cell]['success'] for cell in changed)
        figures[f'{label}_median_max_m'] = max(cells[cell]['median_m'] for cell in changed)
        figures[f'{label}_pipeline_wall_s'] = [s['pipeline']['wall_s'] for s in per_seed]
    (out / 'figures.json').write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
