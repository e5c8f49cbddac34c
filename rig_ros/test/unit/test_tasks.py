"""One task registry: the graph, the sim and the CLI offer exactly its tasks.

Adding a task is one `TaskSpec` in `rig_ros.tasks.TASKS` plus its `SceneLayout` in
`rig_ros.sim.scene.SCENE_LAYOUTS`; nothing else names the tasks.
"""

import argparse
import pathlib
import subprocess
import sys

import pytest

from rig_ros import graph, tasks
from rig_ros.cli import build_parser
from rig_ros.interfaces import names
from rig_ros.sim import scene
from rig_ros.sim.sawyer import SawyerSim, SawyerSimConfig
from rig_ros.tasks import TaskSpec

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / 'config'
NOT_A_TASK = 'juggler'
TASK_COMMANDS = ('demo', 'pipeline', 'practice', 'reach')


def test_registry_lists_its_tasks_by_name():
    assert tasks.TASK_NAMES == tuple(tasks.TASKS) == ('reacher', 'pusher', 'multi_pusher')
    for name, spec in tasks.TASKS.items():
        assert spec.name == name and tasks.task(name) is spec
    assert [spec.puck_count for spec in tasks.TASKS.values()] == [0, 1, 2]


def test_unknown_task_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError) as error:
        tasks.task(NOT_A_TASK)
    assert NOT_A_TASK in str(error.value)
    assert all(name in str(error.value) for name in tasks.TASK_NAMES)


def test_registry_imports_neither_mujoco_nor_rclpy():
    code = ('import sys; import rig_ros.tasks, rig_ros.graph; '
            "print(sorted({'mujoco', 'rclpy', 'torch'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == '[]', result.stdout + result.stderr


@pytest.mark.parametrize('changes, message', [
    ({'name': 'Bad-name'}, 'lower-case identifier'),
    ({'hand_start': (0.0, 0.9)}, 'hand_start .* outside the workspace'),
    ({'workspace_high': (-0.3, 0.75)}, 'workspace_low .* below workspace_high'),
    ({'puck_starts': ((0.0, 0.6),)}, 'puck_goal_low None must be below'),
    ({'puck_goal_low': (-0.2, 0.5), 'puck_goal_high': (0.2, 0.7)}, 'puck goal box without'),
    ({'hand_goal_low': (-0.5, 0.55), 'hand_goal_high': (0.0, 0.6)}, 'hand_goal box leaves'),
    ({'puck_starts': ((0.0, float('nan')),)}, r'puck_starts\[0\] must be 2 finite'),
])
def test_inconsistent_specs_are_refused(changes, message):
    fields = {'name': 'sweeper', 'summary': 'a test task', 'workspace_low': (-0.2, 0.55),
              'workspace_high': (0.2, 0.75), 'hand_start': (0.0, 0.6)}
    TaskSpec(**fields)
    with pytest.raises(ValueError, match=message):
        TaskSpec(**{**fields, **changes})


# The graph.

def test_graph_offers_exactly_the_registry():
    for arguments in (graph.PRACTICE_ARGUMENTS, graph.REACH_ARGUMENTS):
        task_argument = next(argument for argument in arguments if argument.name == 'task')
        assert task_argument.choices == tasks.TASK_NAMES
        assert task_argument.default in tasks.TASK_NAMES
    for name in tasks.TASK_NAMES:
        for function in (graph.practice_graph, graph.reach_graph):
            by_executable = {spec.executable: spec for spec in function(task=name)}
            assert by_executable[names.MUJOCO_SIM].parameters['task'] == name
            assert by_executable[names.LEARNER].parameters['task'] == name
    for graph_name in graph.GRAPHS:
        with pytest.raises(ValueError, match='task must be one of'):
            graph.graph_from_arguments(graph_name, {'task': NOT_A_TASK})
    for function in (graph.practice_graph, graph.reach_graph):
        with pytest.raises(ValueError, match=f'unknown task {NOT_A_TASK!r}'):
            function(task=NOT_A_TASK)


def test_parameters_layer_the_base_then_what_the_task_changes():
    base = graph.config_file(graph.BASE_CONFIG)
    assert pathlib.Path(base).name == 'rig.yaml'
    for name, spec in tasks.TASKS.items():
        own = (graph.config_file(spec.param_file),) if spec.param_file else ()
        robot = (graph.config_file(spec.robot_config),)
        assert graph.task_param_files(name) == (base,) + own
        assert graph.task_param_files(name, sim=False) == (base,) + own + robot
        assert graph.task_param_files(name, '/user.yaml', sim=False) == (
            (base,) + own + robot + ('/user.yaml',))
        for spec_node in graph.practice_graph(task=name, sim=False):
            assert spec_node.param_files == (base,) + own + robot
    # Every package file is the base, a task's own or a task's real-robot file.
    used = {graph.BASE_CONFIG} | {stem for spec in tasks.TASKS.values()
                                  for stem in (spec.param_file, spec.robot_config) if stem}
    assert {path.stem for path in CONFIG_DIR.glob('*.yaml')} == used


# The sim.

def test_sim_offers_exactly_the_registry():
    assert set(scene.SCENE_LAYOUTS) == set(tasks.TASK_NAMES)
    for name, spec in tasks.TASKS.items():
        assert spec.puck_count <= len(scene.PUCK_COLOURS)
        config = SawyerSimConfig(task=name)
        assert (config.workspace_low, config.workspace_high) == (
            spec.workspace_low, spec.workspace_high)
        assert config.camera_lookat == scene.SCENE_LAYOUTS[name].camera_lookat
        with SawyerSim(config) as sim:
            assert sim.n_pucks == spec.puck_count and sim.state_dim == 2 + 2 * spec.puck_count
            assert sim.state_vector()[:2] == pytest.approx(spec.hand_start, abs=0.003)
    with pytest.raises(ValueError, match=f'unknown task {NOT_A_TASK!r}'):
        SawyerSimConfig(task=NOT_A_TASK)


def test_a_new_task_is_a_registry_entry_plus_its_scene_layout(monkeypatch):
    sweeper = TaskSpec('sweeper', 'a test task', (-0.2, 0.5), (0.2, 0.75), (0.0, 0.55),
                       robot_config='sawyer_reacher')
    monkeypatch.setitem(tasks.TASKS, sweeper.name, sweeper)
    with pytest.raises(ValueError, match='no scene layout'):
        SawyerSimConfig(task=sweeper.name)
    monkeypatch.setitem(scene.SCENE_LAYOUTS, sweeper.name, scene.SCENE_LAYOUTS['reacher'])
    assert SawyerSimConfig(task=sweeper.name).workspace_low == (-0.2, 0.5)
    specs = graph.practice_graph(task=sweeper.name, sim=False)
    assert specs[0].param_files == graph.task_param_files('reacher', sim=False)
    # A task's own parameter file must exist once its spec names it.
    monkeypatch.setitem(tasks.TASKS, sweeper.name, TaskSpec(
        'sweeper', 'a test task', (-0.2, 0.5), (0.2, 0.75), (0.0, 0.55), param_file='sweeper'))
    with pytest.raises(FileNotFoundError, match='sweeper.yaml'):
        graph.practice_graph(task=sweeper.name)
    with pytest.raises(ValueError, match='no real-robot parameter file'):
        graph.task_param_files(sweeper.name, sim=False)


# The CLI.

def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(action for action in parser._actions
                  if isinstance(action, argparse._SubParsersAction))
    return dict(action.choices)


def test_cli_offers_exactly_the_registry():
    commands = _subcommands(build_parser())
    for command in TASK_COMMANDS:
        task_option = next(action for action in commands[command]._actions
                           if action.dest == 'task')
        assert tuple(task_option.choices) == tasks.TASK_NAMES, command
        assert task_option.default in tasks.TASK_NAMES, command
