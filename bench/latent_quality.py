"""How well a trained VAE's latent distance ranks hand positions (reacher diagnostic).

For a grid of hand positions in the box, every position is rendered and encoded. For each goal
position, the grid position with the smallest latent distance to the goal's latent should be
the goal itself: the distance of that arg-min to the goal (in metres) shows false minima, the
failure mode in which RIG's policy settles far from the goal.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'rig_ros'))

from rig_ros.core import checkpoints  # noqa: E402
from rig_ros.core.pipeline import LatentObserver, PipelineConfig  # noqa: E402
from rig_ros.core.vae import ConvVAE, VAEConfig  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402


def main() -> int:
    """Print the false-minimum figures of a run directory's VAE."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('run_dir')
    parser.add_argument('--grid', type=int, default=15)
    args = parser.parse_args()
    run_dir = pathlib.Path(args.run_dir)
    config = PipelineConfig.from_dict(json.loads((run_dir / 'config.json').read_text()))
    saved = checkpoints.load_checkpoint(run_dir / 'vae.safetensors')
    vae = ConvVAE(VAEConfig(**saved.config))
    vae.load_state_dict(saved.modules['vae'])
    vae.eval()
    observer = LatentObserver(vae, config.preprocess_config)
    with SawyerSim(SawyerSimConfig(task='reacher')) as sim:
        low, high = sim.config.workspace_low, sim.config.workspace_high
        xs = np.linspace(low[0] + 0.01, high[0] - 0.01, args.grid)
        ys = np.linspace(low[1] + 0.01, high[1] - 0.01, args.grid)
        positions = np.array([(x, y) for x in xs for y in ys])
        images = np.stack([observer.image(sim.render_goal(p, config.raw_height,
                                                          config.raw_width))
                           for p in positions])
    latents = observer.encode(images)
    latent_distance = np.linalg.norm(latents[:, None] - latents[None], axis=-1)
    np.fill_diagonal(latent_distance, np.inf)
    hand_distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    nearest_in_latent = hand_distance[np.arange(len(positions)), latent_distance.argmin(1)]
    spacing = float(np.min(hand_distance[hand_distance > 0]))
    off = positions[nearest_in_latent > 2.5 * spacing]
    figures = {
        'grid_spacing_m': spacing,
        'latent_nearest_neighbour_distance_median_m': float(np.median(nearest_in_latent)),
        'latent_nearest_neighbour_distance_max_m': float(np.max(nearest_in_latent)),
        'false_neighbour_fraction': float(np.mean(nearest_in_latent > 2.5 * spacing)),
        'false_neighbour_positions': off.round(3).tolist()[:20],
        'latent_std': latents.std(0).round(3).tolist(),
    }
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
