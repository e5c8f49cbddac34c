"""Evaluations on goals, and `metrics.jsonl`, the run directory's log of them.

`metrics.jsonl` holds one JSON object per line, each with a 'stage': 'eval' for an evaluation
(an `EvaluationRecord`, written by the in-process pipeline and by a graph session alike),
'pretrain' or 'practice' for the pipeline's training figures, 'fine_tune' for an online VAE
fine-tuning round's loss. `EvaluationRecord.to_row()` is the one way an evaluation line is
written and `from_row()` the one way it is read back, so the format below is fixed here:

- always: stage ('eval'), rl_step, env_steps_total, rig_success_rate,
  rig_final_hand_distance_median, rig_final_hand_distance_mean, rig_hand_distances,
  rig_puck_distances;
- pushing tasks: rig_final_puck_distance_median, rig_final_puck_distance_mean;
- since this module: success_threshold_m;
- graph sessions: target_steps, updates, learner (the learner's status), and
  initial_hand_distances.
Absent values are left out of the line, not written as null.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import json
import os
import pathlib
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

METRICS_FILE = 'metrics.jsonl'
EVAL_STAGE = 'eval'


@dataclass
class Evaluation:
    """Final distances to each evaluation goal."""

    hand_distance: list[float]
    """Final hand distance to each goal, metres."""
    puck_distance: list[float]
    """Final puck distance (summed over pucks) to each goal, metres; empty without pucks."""
    success_threshold_m: float
    """Final hand (+ puck) distance counted as a success."""

    @classmethod
    def from_results(cls, results: Sequence[Mapping[str, float]],
                     threshold: float) -> 'Evaluation':
        """Collect per-goal distances ({'hand_distance', 'puck_distance'?}, as the sim gives)."""
        return cls(hand_distance=[float(r['hand_distance']) for r in results],
                   puck_distance=[float(r['puck_distance']) for r in results
                                  if 'puck_distance' in r],
                   success_threshold_m=threshold)

    @property
    def success_rate(self) -> float:
        """Fraction of goals finished within the threshold (hand+puck for pushing)."""
        total = np.asarray(self.hand_distance) + np.asarray(self.puck_distance or 0.0)
        return float(np.mean(total < self.success_threshold_m))

    def summary(self, prefix: str) -> dict[str, float]:
        """Median/mean/success figures with a key prefix ('rig', 'oracle', 'random')."""
        figures = {
            f'{prefix}_success_rate': self.success_rate,
            f'{prefix}_final_hand_distance_median': float(np.median(self.hand_distance)),
            f'{prefix}_final_hand_distance_mean': float(np.mean(self.hand_distance)),
        }
        if self.puck_distance:
            figures[f'{prefix}_final_puck_distance_median'] = float(
                np.median(self.puck_distance))
            figures[f'{prefix}_final_puck_distance_mean'] = float(np.mean(self.puck_distance))
        return figures


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of RIG's policy: a 'eval' line of metrics.jsonl, a learning-curve point.

    The field names are the line's keys (see the module doc).
    """

    rl_step: int
    """Practice steps done when evaluating (the fleet's, through the graph)."""
    env_steps_total: int
    """Environment steps in all: practice plus the image collection for the VAE."""
    rig_success_rate: float
    """Fraction of goals reached within success_threshold_m."""
    rig_final_hand_distance_median: float
    """Median final hand distance to the goals, metres."""
    rig_final_hand_distance_mean: float
    """Mean final hand distance to the goals, metres."""
    rig_hand_distances: list[float]
    """Final hand distance to each goal, metres."""
    rig_puck_distances: list[float]
    """Final puck distance to each goal, metres (empty without pucks)."""
    rig_final_puck_distance_median: Optional[float] = None
    """Median final puck distance, metres (pushing tasks)."""
    rig_final_puck_distance_mean: Optional[float] = None
    """Mean final puck distance, metres (pushing tasks)."""
    success_threshold_m: Optional[float] = None
    """Distance counted as a success (absent from lines written before this record)."""
    target_steps: Optional[int] = None
    """Graph sessions: the practice budget this evaluation closes."""
    updates: Optional[int] = None
    """Graph sessions: TD3 updates the learner had done."""
    initial_hand_distances: Optional[list[float]] = None
    """Graph sessions: hand distance to each goal before the attempt, metres."""
    learner: Optional[dict[str, Any]] = None
    """Graph sessions: the learner's status when practice stopped."""

    @staticmethod
    def figures(evaluation: Evaluation) -> dict[str, Any]:
        """Return the fields an Evaluation fills: figures, distances and threshold."""
        return {**evaluation.summary('rig'), 'rig_hand_distances': list(evaluation.hand_distance),
                'rig_puck_distances': list(evaluation.puck_distance),
                'success_threshold_m': evaluation.success_threshold_m}

    @classmethod
    def of(cls, evaluation: Evaluation, **values: Any) -> 'EvaluationRecord':
        """Return the record of `evaluation`; `values` gives rl_step, env_steps_total, ..."""
        return cls(**cls.figures(evaluation), **values)

    def to_row(self) -> dict[str, Any]:
        """Return the metrics.jsonl line as a JSON-able dict."""
        row: dict[str, Any] = {'stage': EVAL_STAGE}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                row[field.name] = value
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> 'EvaluationRecord':
        """Read an 'eval' line back; ValueError naming what is missing or not an evaluation."""
        if row.get('stage') != EVAL_STAGE:
            raise ValueError(f"not an evaluation line (stage {row.get('stage')!r})")
        known = {field.name for field in fields(cls)}
        try:
            return cls(**{key: value for key, value in row.items() if key in known})
        except TypeError as error:
            raise ValueError(f'an evaluation line lacks fields: {error}') from None


def append_row(path: Union[str, os.PathLike], row: Mapping[str, Any]) -> None:
    """Append one line to a metrics.jsonl file (created if missing)."""
    with pathlib.Path(path).open('a') as stream:
        stream.write(json.dumps(row) + '\n')


def append_evaluation(path: Union[str, os.PathLike], record: EvaluationRecord) -> None:
    """Append an evaluation's line to a metrics.jsonl file."""
    append_row(path, record.to_row())


def read_rows(path: Union[str, os.PathLike], stage: str) -> list[dict[str, Any]]:
    """Return a metrics.jsonl file's lines of one stage in order ([] when there is no file)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get('stage') == stage]


def read_evaluations(path: Union[str, os.PathLike]) -> list[EvaluationRecord]:
    """Return the evaluations of a metrics.jsonl file in order ([] when there is no file)."""
    return [EvaluationRecord.from_row(row) for row in read_rows(path, EVAL_STAGE)]
