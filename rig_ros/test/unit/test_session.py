"""The session's pure parts: budgets, distances, parameter merging, spec overrides, CLI."""

import json
import pathlib

import numpy as np
import pytest
import yaml

from rig_ros import cli, graph
from rig_ros.cli.demo import DEMO_BUDGET, QUICK_DEMO_BUDGET
from rig_ros.cli.graph import config_from_args
from rig_ros.interfaces import names
from rig_ros.run.session import (
    evaluation_summary, learner_stage_wall_s, merged_params, progress_line, Session,
    SessionConfig, state_distances, with_parameters)


def test_evaluation_points_end_at_the_budget():
    assert SessionConfig(steps=1000).checkpoints() == [1000]
    given = SessionConfig(steps=1000, eval_every=400, vae_checkpoint='vae.safetensors')
    assert given.checkpoints() == [400, 800, 1000]
    assert SessionConfig(steps=1000, eval_every=1000).checkpoints() == [1000]


def test_evaluation_points_come_after_exploration():
    config = SessionConfig(steps=1000, eval_every=200, explore_frames=500)
    assert config.checkpoints() == [600, 800, 1000]  # no VAE before 500 steps


def test_the_learner_explores_unless_a_vae_is_given(tmp_path):
    config = SessionConfig(explore_frames=700, vae_steps=90, fine_tune_vae_every=300,
                           fine_tune_vae_until=1500)
    session = Session(config, tmp_path / 'run', progress=False)
    learner = yaml.safe_load(pathlib.Path(session.params_file('')).read_text())[
        '/**/learner']['ros__parameters']
    assert (learner['explore_frames'], learner['vae_steps'], learner['fine_tune_vae_every'],
            learner['fine_tune_vae_until']) == (700, 90, 300, 1500)
    assert 'vae_checkpoint' not in learner  # an empty run directory explores
    evaluation = yaml.safe_load(pathlib.Path(session.params_file(
        str(tmp_path / 'run'), 'eval.yaml')).read_text())['/**/learner']['ros__parameters']
    assert evaluation['vae_checkpoint'] == str(tmp_path / 'run')


def test_stage_wall_times_come_from_the_learners_stage_record(tmp_path):
    assert learner_stage_wall_s(tmp_path) == {}
    (tmp_path / 'stage.json').write_text(json.dumps(
        {'began': {'explore': 100.0, 'pretrain': 160.0, 'practise': 205.5}}))
    assert learner_stage_wall_s(tmp_path) == {'explore': 60.0, 'pretrain': 45.5}
    (tmp_path / 'stage.json').write_text(json.dumps({'began': {'explore': 100.0}}))
    assert learner_stage_wall_s(tmp_path) == {}  # still exploring


def test_progress_lines_name_the_stage():
    assert progress_line({'stage': 'explore', 'frames': 120, 'explore_frames': 500,
                          'received': 118}).startswith('explore: 120/500 frames')
    assert progress_line({'stage': 'pretrain', 'vae_step': 40, 'vae_steps': 90}) == (
        'pretrain: VAE step 40/90')
    assert progress_line({'stage': 'practise', 'received': 900}).startswith(
        'practise: 900 steps')


@pytest.mark.parametrize('field, value', [('steps', 0), ('eval_goals', 0),
                                          ('learning_starts', -1), ('task', 'juggler')])
def test_bad_settings_name_themselves(field, value):
    with pytest.raises(ValueError, match=field if field != 'task' else 'task'):
        SessionConfig(**{field: value})


def test_state_distances_match_the_sim():
    assert state_distances(np.array([0.0, 0.1]), np.array([0.0, 0.2])) == pytest.approx(
        {'hand_distance': 0.1})
    pusher = state_distances(np.array([0, 0, 0.1, 0.1]), np.array([0, 0, 0.1, 0.4]))
    assert pusher == pytest.approx({'hand_distance': 0.0, 'puck_distance': 0.3})


def test_evaluation_summary_has_the_pipeline_keys():
    results = [{'hand_distance': d, 'initial_hand_distance': 0.2} for d in (0.01, 0.03, 0.2)]
    summary = evaluation_summary(results, 0.05)
    assert summary['rig_success_rate'] == pytest.approx(2 / 3)
    assert summary['rig_final_hand_distance_median'] == pytest.approx(0.03)
    assert summary['initial_hand_distances'] == [0.2] * 3


def test_session_settings_win_over_the_users_and_keep_the_rest(tmp_path):
    user = tmp_path / 'user.yaml'
    user.write_text(yaml.safe_dump({'/**/learner': {'ros__parameters': {
        'td3': {'hidden_sizes': [64, 64], 'learning_starts': 7}, 'replay_capacity': 500}}}))
    merged = merged_params(str(user), {'/**/learner': {'ros__parameters': {
        'td3': {'learning_starts': 100}}}})
    learner = merged['/**/learner']['ros__parameters']
    assert learner == {'td3': {'hidden_sizes': [64, 64], 'learning_starts': 100},
                       'replay_capacity': 500}


def test_a_users_yaml_anchors_are_written_out_in_full(tmp_path):
    user = tmp_path / 'user.yaml'  # one box for two nodes, by an anchor
    user.write_text('/**/goal_scheduler:\n  ros__parameters:\n    frame_goals_hand_box: &box\n'
                    '      {low: [-0.05, 0.55], high: [0.05, 0.65]}\n'
                    '/**/learner:\n  ros__parameters:\n    frame_goals_hand_box: *box\n')
    session = Session(SessionConfig(params_file=str(user)), tmp_path / 'run', progress=False)
    text = pathlib.Path(session.params_file('')).read_text()
    assert '&' not in text and ': *' not in text  # rcl refuses anchors and aliases
    values = yaml.safe_load(text)
    assert (values['/**/learner']['ros__parameters']['frame_goals_hand_box']
            == values['/**/goal_scheduler']['ros__parameters']['frame_goals_hand_box']
            == {'low': [-0.05, 0.55], 'high': [0.05, 0.65]})


def test_evaluation_policy_reports_its_steps():
    specs = with_parameters(graph.reach_graph(), names.POLICY, publish_transitions=True)
    policy = next(spec for spec in specs if spec.executable == names.POLICY)
    assert policy.parameters['publish_transitions'] is True
    assert policy.parameters['explore'] is False
    others = [spec for spec in specs if spec.executable != names.POLICY]
    assert all('publish_transitions' not in spec.parameters for spec in others)


def test_cli_practice_with_steps_builds_a_session():
    args = cli.build_parser().parse_args(
        ['practice', '--steps', '500', '--run-dir', 'x', '--eval-goals', '4', '--seed', '3'])
    config = config_from_args(args)
    assert (config.steps, config.eval_goals, config.seed, config.task) == (500, 4, 3, 'reacher')
    assert cli.build_parser().parse_args(['practice']).steps is None  # the graph until Ctrl-C


def test_cli_practice_refuses_a_bad_setting_before_it_announces_a_session(tmp_path, capsys):
    run_dir = tmp_path / 'session'
    code = cli.main(['practice', '--steps', '500', '--run-dir', str(run_dir),
                     '--fine-tune-vae-until', '1000'])
    out, err = capsys.readouterr()
    assert code == 2
    assert 'fine_tune_vae_every' in err and 'practice session' not in out
    assert not run_dir.exists()


def test_cli_demo_runs_the_graph_unless_in_process():
    parser = cli.build_parser()
    assert parser.parse_args(['demo']).in_process is False
    assert parser.parse_args(['demo', '--graph']).in_process is False
    assert parser.parse_args(['demo', '--in-process']).in_process is True


@pytest.mark.parametrize('budget', [DEMO_BUDGET, QUICK_DEMO_BUDGET])
def test_demo_budget_is_the_same_through_the_graph_and_in_process(budget):
    session = budget.session_config('pusher', 5)
    pipeline = budget.pipeline_config('pusher', 5)
    assert (session.task, session.seed) == (pipeline.task, pipeline.seed) == ('pusher', 5)
    assert session.steps == pipeline.collect_images + pipeline.rl_steps  # exploration included
    assert session.explore_frames == pipeline.collect_images
    for name in ('vae_steps', 'eval_goals', 'episode_length'):
        assert getattr(session, name) == getattr(pipeline, name), name
    assert (session.learning_starts, session.updates_per_step) == (
        pipeline.td3.learning_starts, pipeline.td3.updates_per_step)
