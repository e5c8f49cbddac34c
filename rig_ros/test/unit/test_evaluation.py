"""EvaluationRecord: the one format of metrics.jsonl's evaluation lines."""

import json

import pytest

from rig_ros.core.evaluation import (
    append_evaluation, append_row, Evaluation, EvaluationRecord, read_evaluations)


def test_a_record_is_the_line_it_writes(tmp_path):
    evaluation = Evaluation.from_results(
        [{'hand_distance': 0.01, 'puck_distance': 0.02}, {'hand_distance': 0.2,
                                                          'puck_distance': 0.1}], 0.05)
    record = EvaluationRecord.of(evaluation, rl_step=60, env_steps_total=180, target_steps=50)
    row = record.to_row()
    assert row['stage'] == 'eval' and row['rig_success_rate'] == 0.5
    assert row['rig_final_puck_distance_median'] == pytest.approx(0.06)
    assert 'learner' not in row and 'updates' not in row  # absent, not null
    path = tmp_path / 'metrics.jsonl'
    append_row(path, {'stage': 'practice', 'rl_step': 60, 'critic_loss': 1.0})
    append_evaluation(path, record)
    assert read_evaluations(path) == [record]
    assert json.loads(path.read_text().splitlines()[1]) == row


def test_lines_written_before_the_record_are_read():
    old = {'stage': 'eval', 'rl_step': 0, 'env_steps_total': 5000, 'rig_success_rate': 0.0,
           'rig_final_hand_distance_median': 0.1, 'rig_final_hand_distance_mean': 0.12,
           'rig_hand_distances': [0.1, 0.14], 'rig_puck_distances': []}
    record = EvaluationRecord.from_row(old)
    assert record.success_threshold_m is None and record.to_row() == old
    with pytest.raises(ValueError, match='lacks'):
        EvaluationRecord.from_row({'stage': 'eval', 'rl_step': 0})
    with pytest.raises(ValueError, match='not an evaluation'):
        EvaluationRecord.from_row({**old, 'stage': 'practice'})
    assert read_evaluations('/nonexistent/metrics.jsonl') == []
