"""Plots and short reports of runs: every PNG the project draws, a markdown summary.

Learning curves (in-process and graph evaluations), the graph session's practice progress, the
learner's TensorBoard scalars, goal images over the frames reached, and `plot_run`, which draws
whatever a run directory holds (`rig report`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use('Agg')  # no display on robots' PCs or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rig_ros.core.evaluation import METRICS_FILE, read_evaluations  # noqa: E402


@dataclasses.dataclass(frozen=True)
class CurveAxes:
    """Which evaluation keys the learning-curve plot reads, and how it labels them."""

    x_key: str = 'rl_step'
    x_label: str = 'RL steps'
    success_label: str = 'success rate (final hand distance < 5 cm)'
    distance_key: str = 'rig_final_hand_distance_median'
    distance_label: str = 'median final hand distance (cm)'


def plot_learning_curves(curves: dict[str, Sequence[dict[str, Any]]], path: pathlib.Path,
                         title: str, references: dict[str, float] | None = None,
                         axes: CurveAxes = CurveAxes()) -> None:
    """Success rate and a median final distance against steps, one line per run."""
    figure, (success_axis, distance_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        steps = [point[axes.x_key] for point in curve]
        success_axis.plot(steps, [point['rig_success_rate'] for point in curve], marker='o',
                          label=label)
        distance_axis.plot(steps, [100 * point[axes.distance_key] for point in curve],
                           marker='o', label=label)
    for label, value in (references or {}).items():
        distance_axis.axhline(100 * value, linestyle='--', color='grey')
        # At the left edge whatever the x range (environment steps start after collection).
        distance_axis.annotate(label, (0.01, 100 * value), xycoords=('axes fraction', 'data'),
                               fontsize=8)
    success_axis.set(xlabel=axes.x_label, ylabel=axes.success_label, ylim=(-0.02, 1.02),
                     title='success')
    distance_axis.set(xlabel=axes.x_label, ylabel=axes.distance_label, title='final distance')
    distance_axis.set_yscale('log')
    if curves:  # references alone label no line of this axis
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


def outcome_line(result: dict[str, Any], run_dir: pathlib.Path) -> str:
    """One line: success, median distance, wall time, where the report is."""
    return (f"success rate {result['rig_success_rate']:.2f}, median final hand distance "
            f"{100 * result['rig_final_hand_distance_median']:.1f} cm, wall "
            f"{result['wall_s']:.0f} s; report: {run_dir / 'report.md'}")


def plot_practice_progress(status_log: pathlib.Path, path: pathlib.Path, title: str) -> None:
    """Plot steps received and TD3 updates against wall time (the practice status log)."""
    if not status_log.is_file():
        return
    rows = [json.loads(line) for line in status_log.read_text().splitlines() if line.strip()]
    if not rows:
        return
    figure, axis = plt.subplots(figsize=(6, 4))
    # Each graph restart (an evaluation) starts the log's clock again: add the pieces up.
    wall = np.cumsum([0.0] + [max(0.0, b['wall_s'] - a['wall_s']) if b['wall_s'] >= a['wall_s']
                              else b['wall_s'] for a, b in zip(rows, rows[1:])])
    axis.plot(wall, [row.get('received', 0) for row in rows], label='steps received')
    axis.plot(wall, [row.get('updates', 0) for row in rows], label='TD3 updates')
    axis.set(xlabel='practice wall time (s)', ylabel='count', title=title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_panels(points: list[dict[str, Any]], x_key: str, path: pathlib.Path,
                title: str) -> Optional[pathlib.Path]:
    """Plot every numeric key of `points` against `x_key`, one labelled panel each."""
    keys = sorted({key for point in points for key, value in point.items()
                   if key != x_key and isinstance(value, (int, float))
                   and not isinstance(value, bool)})
    if not keys:
        return None
    columns = min(3, len(keys))
    rows = (len(keys) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, key in zip(axes.flat, keys):
        xy = [(point[x_key], point[key]) for point in points if key in point]
        axis.plot([x for x, _ in xy], [y for _, y in xy], marker='.' if len(xy) < 50 else None)
        axis.set(title=key, xlabel=x_key)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis('off')
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def tensorboard_scalars(directory: pathlib.Path) -> list[dict[str, Any]]:
    """Return the scalars of a TensorBoard log directory as points {'step', tag: value}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(directory), size_guidance={'scalars': 0})
    accumulator.Reload()
    points: dict[int, dict[str, Any]] = {}
    for tag in accumulator.Tags().get('scalars', []):
        for event in accumulator.Scalars(tag):
            points.setdefault(event.step, {'step': event.step})[tag] = event.value
    return [points[step] for step in sorted(points)]


def goal_grid(goals: np.ndarray, finals: np.ndarray, path: pathlib.Path, title: str) -> None:
    """Write goal images (top row) over the final frames reached (bottom row)."""
    count = len(goals)
    figure, axes = plt.subplots(2, count, figsize=(max(6.0, 1.6 * count + 0.8), 3.8),
                                squeeze=False)
    for index in range(count):
        for row, images in enumerate((goals, finals)):
            axes[row, index].imshow(images[index])
            axes[row, index].set_xticks([])
            axes[row, index].set_yticks([])
        axes[0, index].set_title(f'goal {index}', fontsize=8)
    axes[0, 0].set_ylabel('goal image')
    axes[1, 0].set_ylabel('reached')
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_run(run_dir: str) -> list[pathlib.Path]:
    """Write a run directory's PNGs; return them. ValueError if there is nothing to plot.

    `learning_curve.png` (evaluations: result.json or metrics.jsonl), `learner_curves.png`
    (the learner's TensorBoard scalars) and `goals_vs_reached.png` (goal images over the final
    frames of the latest evaluation, eval_frames.npz).
    """
    run = pathlib.Path(run_dir)
    if not run.is_dir():
        raise ValueError(f'no run directory {run_dir!r}')
    written: list[pathlib.Path] = []
    result_file, metrics_file = run / 'result.json', run / METRICS_FILE
    curve: list[dict[str, Any]] = []
    if result_file.is_file():
        curve = json.loads(result_file.read_text()).get('curve', [])
    elif metrics_file.is_file():
        curve = [record.to_row() for record in read_evaluations(metrics_file)]
    if curve:
        path = run / 'learning_curve.png'
        plot_learning_curves({run.name: curve}, path, f'RIG evaluations: {run.name}')
        written.append(path)
    if (run / 'tensorboard').is_dir():
        panels = plot_panels(tensorboard_scalars(run / 'tensorboard'), 'step',
                             run / 'learner_curves.png',
                             f'learner: {run.name} (x: stored transitions)')
        written += [panels] if panels else []
    if (run / 'eval_frames.npz').is_file():
        with np.load(run / 'eval_frames.npz') as data:
            goal_grid(data['goals'], data['finals'], run / 'goals_vs_reached.png',
                      f'goal images (top), final frames reached (bottom)\n'
                      f'{run.name}, RL step {int(data["rl_step"])}')
        written.append(run / 'goals_vs_reached.png')
    if not written:
        raise ValueError(f'{run_dir!r} holds no result.json, metrics.jsonl, tensorboard/ or '
                         'eval_frames.npz')
    return written
