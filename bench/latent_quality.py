"""How well a trained VAE's latent distance ranks hand and puck positions (a diagnostic).

For a grid of hand positions in the box, every position is rendered and encoded. For each goal
position, the grid position with the smallest latent distance to the goal's latent should be
the goal itself: the distance of that arg-min to the goal (in metres) shows false minima, the
failure mode in which RIG's policy settles far from the goal. In a pushing task the same is
done for the (first) puck over its goal box, the hand at its start; `latent_distance_per_cm`
(how far the latent moves per centimetre of motion) of puck against hand says how much the
latent, and so the latent reward, sees of the puck. `distance_profile` looks past neighbours:
how the latent distance grows with the true one over every pair (a reward that stops growing
gives far goals no gradient). `--position-probe` measures the same under the distance of
the reward's position probe (`PipelineConfig.reward_position_probe`), fitted on the run's frames
and their true states.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))

from rig_ros import tasks  # noqa: E402
from rig_ros.core import checkpoints  # noqa: E402
from rig_ros.core.pipeline import LatentObserver, PipelineConfig  # noqa: E402
from rig_ros.core.rewards import PositionProbe  # noqa: E402
from rig_ros.core.vae import ConvVAE, VAEConfig  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402

CLEARANCE_M = 0.07  # hand centre to puck centre: no overlap in the rendered scene
PROFILE_BINS_CM = (0, 2, 5, 10, 15, 20, 30, 60)
"""Bins of true distance (cm) over which `distance_profile` reports the latent distance."""


def distance_profile(latent_distance: np.ndarray, position_distance: np.ndarray) -> dict:
    """Return how latent distance grows with true distance over every pair of grid points.

    A latent reward steers the policy only where the latent distance keeps growing with the
    true one: a profile that flattens beyond some distance leaves goals that far away without a
    gradient. `rank_correlation` is Spearman's over all pairs (1: the latent orders every pair
    as the metres do).
    """
    upper = np.triu_indices(len(position_distance), k=1)
    true_cm, latent = 100 * position_distance[upper], latent_distance[upper]
    bins = []
    for low, high in zip(PROFILE_BINS_CM[:-1], PROFILE_BINS_CM[1:]):
        inside = (true_cm > low) & (true_cm <= high)
        if inside.any():
            bins.append({'true_cm': [low, high], 'pairs': int(inside.sum()),
                         'latent_median': float(np.median(latent[inside])),
                         'latent_per_cm_median': float(np.median(latent[inside]
                                                                 / true_cm[inside]))})
    return {'bins': bins,
            # Rounded so that pairs a grid puts equally far apart tie despite float noise.
            'rank_correlation': float(np.corrcoef(average_ranks(true_cm.round(4)),
                                                  average_ranks(latent.round(6)))[0, 1])}


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Return the ranks of `values`, ties given their mean rank (as Spearman's needs)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2)[inverse]


def neighbour_figures(latents: np.ndarray, positions: np.ndarray) -> dict:
    """Return the false minima of latent distance over a grid of positions of one object."""
    latent_distance = np.linalg.norm(latents[:, None] - latents[None], axis=-1)
    np.fill_diagonal(latent_distance, np.inf)
    position_distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    nearest_in_latent = position_distance[np.arange(len(positions)), latent_distance.argmin(1)]
    spacing = float(np.min(position_distance[position_distance > 0]))
    off = positions[nearest_in_latent > 2.5 * spacing]
    adjacent = np.isclose(position_distance, spacing)
    return {
        'grid_spacing_m': spacing,
        'latent_nearest_neighbour_distance_median_m': float(np.median(nearest_in_latent)),
        'latent_nearest_neighbour_distance_max_m': float(np.max(nearest_in_latent)),
        'false_neighbour_fraction': float(np.mean(nearest_in_latent > 2.5 * spacing)),
        'false_neighbour_positions': off.round(3).tolist()[:20],
        # How far the latent moves per centimetre the object moves (adjacent grid cells).
        'latent_distance_per_cm': float(np.median(latent_distance[adjacent]) / (100 * spacing)),
        'latent_std': latents.std(0).round(3).tolist(),
        # Pairs only: the diagonal's inf (set for the arg-min above) never enters the profile.
        'distance_profile': distance_profile(latent_distance, position_distance),
    }


def grid(low: np.ndarray, high: np.ndarray, size: int) -> np.ndarray:
    """Return a size x size grid of points 1 cm inside the box [low, high]."""
    xs = np.linspace(low[0] + 0.01, high[0] - 0.01, size)
    ys = np.linspace(low[1] + 0.01, high[1] - 0.01, size)
    return np.array([(x, y) for x in xs for y in ys])


def train_vae(task: str, variant: str, reset_to_goal_probability: float, seed: int,
              run_dir: pathlib.Path, settings: dict[str, Any], vae_steps: int | None,
              no_augmentation: bool) -> None:
    """Collect and pretrain as bench/pushing.py does, with these data and VAE settings.

    `settings` are fields of bench/pushing.py's RunSettings (the VAE's: image and latent size,
    beta); the reset-to-goal share is `reset_to_goal_probability`.
    """
    import dataclasses
    import importlib

    import torch

    from rig_ros.core.pipeline import RigPipeline
    sys.path.insert(0, str(ROOT / 'bench'))
    pushing = importlib.import_module('pushing')
    torch.set_num_threads(1)
    config = pushing.pushing_config(task, variant, seed, False, 50_000, 20,
                                    pushing.RunSettings(**settings))
    config = dataclasses.replace(
        config, collect_reset_to_goal_probability=reset_to_goal_probability,
        vae_steps=vae_steps or config.vae_steps)
    if no_augmentation:
        config = dataclasses.replace(config, vae=dataclasses.replace(
            config.vae, augmentation=dataclasses.replace(config.vae.augmentation,
                                                         enabled=False)))
    with SawyerSim(SawyerSimConfig(**config.sim_options())) as sim:
        RigPipeline(sim, config, run_dir).vae()


def main() -> int:
    """Print the false-minimum figures of a run directory's VAE (hand; puck for pushing)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('run_dir')
    parser.add_argument('--grid', type=int, default=15)
    parser.add_argument('--train', choices=('pusher', 'multi_pusher'), default=None,
                        help='first collect images and pretrain a VAE into RUN_DIR as '
                        'bench/pushing.py does (the pipeline resumes a finished stage)')
    parser.add_argument('--reset-to-goal-probability', type=float, default=0.5,
                        help='with --train: exploration episodes set to a goal state')
    parser.add_argument('--seed', type=int, default=0, help='with --train: the run seed')
    parser.add_argument('--variant', choices=('rig', 'skewfit'), default='rig',
                        help="with --train: bench/pushing.py's variant (its VAE data)")
    parser.add_argument('--image-size', type=int, default=None,
                        help="with --train: the VAE's input size (bench/pushing.py: 48)")
    parser.add_argument('--latent-dim', type=int, default=None,
                        help="with --train: the VAE's latent size (bench/pushing.py: 4)")
    parser.add_argument('--beta', type=float, default=None,
                        help="with --train: the VAE's KL weight (bench/pushing.py: 10/128)")
    parser.add_argument('--vae-steps', type=int, default=None,
                        help='with --train: pretraining minibatches (bench/pushing.py: 5000)')
    parser.add_argument('--no-augmentation', action='store_true',
                        help="with --train: the VAE's input augmentation off (shifts, light)")
    parser.add_argument('--position-probe', action='store_true',
                        help="measure under the reward's position probe (fitted on RUN_DIR's "
                             'frames and their true states) rather than the plain latent')
    args = parser.parse_args()
    run_dir = pathlib.Path(args.run_dir)
    if args.train:
        settings = {'image_size': args.image_size, 'latent_dim': args.latent_dim,
                    'beta': args.beta}
        train_vae(args.train, args.variant, args.reset_to_goal_probability, args.seed, run_dir,
                  settings, args.vae_steps, args.no_augmentation)
    missing = [name for name in ('config.json', 'vae.safetensors')
               if not (run_dir / name).is_file()]
    if missing:
        parser.error(f'{run_dir} holds no {" or ".join(missing)}: give a pipeline run '
                     'directory with a pretrained VAE, or --train to make one')
    config = PipelineConfig.from_dict(json.loads((run_dir / 'config.json').read_text()))
    saved = checkpoints.load_checkpoint(run_dir / 'vae.safetensors')
    vae = ConvVAE(VAEConfig(**saved.config))
    vae.load_state_dict(saved.modules['vae'])
    vae.eval()
    observer = LatentObserver(vae, config.preprocess_config)
    spec = tasks.task(config.task)
    figures: dict[str, Any] = {'task': config.task, 'position_probe': args.position_probe}
    probe = None
    if args.position_probe:
        with np.load(run_dir / 'images.npz') as data:
            if 'states' not in data.files:
                parser.error(f'{run_dir}/images.npz holds no states: collect it again')
            probe = PositionProbe.fit(observer.encode(data['images']), data['states'],
                                      seed=config.seed)
        figures['probe_holdout_error_m'] = probe.holdout_error_m.tolist()
    # The run's own camera (its seed does not matter: every state is set, nothing sampled).
    with SawyerSim(SawyerSimConfig(**config.sim_options())) as sim:
        def encode(states: np.ndarray) -> np.ndarray:
            latents = observer.encode(np.stack([observer.image(sim.render_goal(
                state, config.raw_height, config.raw_width)) for state in states]))
            return latents if probe is None else probe(latents)
        pucks = np.array(spec.puck_starts, dtype=float).ravel()
        # The hand over its reachable box (pucks where a reset puts them, hand clear of them).
        hands = grid(np.array(sim.config.workspace_low) + 0.04,
                     np.array(sim.config.workspace_high) - 0.04,
                     args.grid)
        if spec.puck_count:
            starts = np.array(spec.puck_starts, dtype=float)
            hands = hands[np.min(np.linalg.norm(hands[:, None] - starts[None], axis=-1),
                                 axis=1) > CLEARANCE_M]
        figures['hand'] = neighbour_figures(
            encode(np.array([np.concatenate([hand, pucks]) for hand in hands])), hands)
        if spec.puck_count:
            # The first puck over its goal box, the hand at its start, other pucks at theirs.
            hand = np.array(spec.hand_start, dtype=float)
            puck_positions = grid(np.array(spec.puck_goal_low), np.array(spec.puck_goal_high),
                                  args.grid)
            puck_positions = puck_positions[
                np.linalg.norm(puck_positions - hand, axis=1) > CLEARANCE_M]
            states = np.array([np.concatenate([hand, position, pucks[2:]])
                               for position in puck_positions])
            figures['puck'] = neighbour_figures(encode(states), puck_positions)
            figures['puck_over_hand_latent_per_cm'] = (
                figures['puck']['latent_distance_per_cm']
                / figures['hand']['latent_distance_per_cm'])
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
