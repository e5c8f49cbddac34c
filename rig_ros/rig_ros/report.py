"""Plots and short reports of runs: learning curves (PNG) and a markdown summary."""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import matplotlib

matplotlib.use('Agg')  # no display on robots' PCs or CI
import matplotlib.pyplot as plt  # noqa: E402


def plot_learning_curves(curves: dict[str, Sequence[dict[str, Any]]], path: pathlib.Path,
                         title: str, references: dict[str, float] | None = None) -> None:
    """Success rate and median final hand distance against RL steps, one line per run."""
    figure, (success_axis, distance_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        steps = [point['rl_step'] for point in curve]
        success_axis.plot(steps, [point['rig_success_rate'] for point in curve], marker='o',
                          label=label)
        distance_axis.plot(
            steps, [100 * point['rig_final_hand_distance_median'] for point in curve],
            marker='o', label=label)
    for label, value in (references or {}).items():
        distance_axis.axhline(100 * value, linestyle='--', color='grey')
        distance_axis.annotate(label, (0, 100 * value), fontsize=8)
    success_axis.set(xlabel='RL steps', ylabel='success rate (final hand distance < 5 cm)',
                     ylim=(-0.02, 1.02), title='success')
    distance_axis.set(xlabel='RL steps', ylabel='median final hand distance (cm)',
                      title='final distance')
    distance_axis.set_yscale('log')
    success_axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_summary(result: dict[str, Any], path: pathlib.Path) -> None:
    """Write a short markdown report of one run's final figures."""
    lines = [f"# RIG run: {result.get('task')} (seed {result.get('seed')})", '']
    for key, value in sorted(result.items()):
        if isinstance(value, float):
            lines.append(f'- {key}: {value:.4g}')
        elif isinstance(value, (int, str)):
            lines.append(f'- {key}: {value}')
    for stage, seconds in result.get('stage_wall_s', {}).items():
        lines.append(f'- wall time of {stage}: {seconds:.1f} s')
    path.write_text('\n'.join(lines) + '\n')
