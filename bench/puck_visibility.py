"""How much of the puck the simulator's camera shows, by camera elevation (a diagnostic).

A goal image whose puck the arm hides gives RIG's latent nothing to aim the puck at, and a
practice frame that hides it gives the reward nothing to see of a push. For each elevation,
over goal states of the task's goal boxes and over pushing states (the hand 4.5-6 cm from the
puck, on any side), `SawyerSim.visible_puck_fractions` measures the share of the puck's
silhouette the camera sees; the figures are the shares of states whose first puck is less
than 20 % and less than 50 % visible. `--eval-seeds` also lists the pusher benchmark's own
evaluation goals (`evaluation_goals`, 20 per seed) that the camera hides. `--hide-arm` measures
the simulator's diagnostic images without the arm's links (`SawyerSimConfig.hide_arm`).
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

from rig_ros.core.pipeline import evaluation_goals  # noqa: E402
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig  # noqa: E402

HIDDEN = 0.2
"""A puck less visible than this counts as hidden."""
HALF = 0.5
PUSH_DISTANCE_M = (0.045, 0.06)
"""Hand centre to puck centre in a pushing state: touching or about to."""


def pushing_state(goal: np.ndarray, rng: np.random.Generator, low: np.ndarray,
                  high: np.ndarray) -> np.ndarray:
    """Return `goal` with the hand moved next to its first puck, on a random side."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    reach = rng.uniform(*PUSH_DISTANCE_M)
    state = goal.copy()
    state[:2] = np.clip(goal[2:4] + reach * np.array([np.cos(angle), np.sin(angle)]), low, high)
    return state


def shares(fractions: np.ndarray) -> dict[str, float]:
    """Shares of states whose puck is hidden (< 20 %) and half hidden (< 50 %), and the median."""
    return {'hidden': float(np.mean(fractions < HIDDEN)),
            'under_half': float(np.mean(fractions < HALF)),
            'median_visible': float(np.median(fractions))}


def measure(task: str, elevation: float, states: int, seed: int, eval_seeds: int,
            hide_arm: bool = False) -> dict[str, Any]:
    """Visibility figures of one camera elevation."""
    config = SawyerSimConfig(task=task, camera_elevation_deg=elevation, hide_arm=hide_arm)
    rng = np.random.default_rng(seed)
    low, high = np.array(config.workspace_low), np.array(config.workspace_high)
    with SawyerSim(config) as sim:
        def visible(state: np.ndarray) -> float:
            sim.set_state_vector(state)
            return float(sim.visible_puck_fractions()[0])

        goals = [sim.sample_goal_state(rng) for _ in range(states)]
        figures: dict[str, Any] = {
            'elevation_deg': elevation, 'hide_arm': hide_arm,
            'goals': shares(np.array([visible(goal) for goal in goals])),
            'pushes': shares(np.array([visible(pushing_state(goal, rng, low, high))
                                       for goal in goals]))}
        hidden_eval = []
        for eval_seed in range(eval_seeds):
            for index, goal in enumerate(evaluation_goals(sim, 20, eval_seed)):
                fraction = visible(goal)
                if fraction < HALF:
                    hidden_eval.append({'seed': eval_seed, 'goal': index,
                                        'visible': round(fraction, 3)})
        if eval_seeds:
            figures['eval_goals_under_half'] = hidden_eval
    return figures


def main() -> int:
    """Measure each elevation and print one JSON line per elevation, then the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='pusher', choices=('pusher', 'multi_pusher'))
    parser.add_argument('--elevations', type=float, nargs='+', default=[-65.0, -55.0, -45.0],
                        help='camera elevations, degrees, each in [-90, 0)')
    parser.add_argument('--states', type=int, default=300,
                        help='goal states (and as many pushing states) per elevation')
    parser.add_argument('--eval-seeds', type=int, default=3,
                        help="the pusher benchmark's seeds whose evaluation goals are checked")
    parser.add_argument('--hide-arm', action='store_true',
                        help="images without the arm's links (a simulator diagnostic)")
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--out', default=None, help='also write the figures to this JSON file')
    args = parser.parse_args()
    if args.states < 1 or args.eval_seeds < 0:
        parser.error(f'--states must be >= 1 and --eval-seeds >= 0, got {args.states} and '
                     f'{args.eval_seeds}')
    if any(not -90.0 <= elevation < 0.0 for elevation in args.elevations):
        parser.error(f'--elevations must lie in [-90, 0), got {args.elevations}')
    results = []
    for elevation in args.elevations:
        results.append(measure(args.task, elevation, args.states, args.seed, args.eval_seeds,
                               args.hide_arm))
        print(json.dumps(results[-1]), flush=True)
    ghost = '_hidearm' if args.hide_arm else ''
    summary = {f'{args.task}_puck_hidden_goals_elevation{result["elevation_deg"]:g}{ghost}':
               result['goals']['hidden'] for result in results}
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
