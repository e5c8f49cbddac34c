"""The graph is described once: graph.py, the launch files and the runner agree.

No launch install is needed: the launch files keep their launch imports inside functions, so
`generate_node_specs` is imported directly, and `generate_launch_description` runs against a
small recording stand-in of the launch/launch_ros API.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import types
from typing import Any, Optional
from xml.etree import ElementTree

from factories import load_script
import pytest
import setuptools
import yaml

from rig_ros import graph
from rig_ros.cli import graph as graph_commands
from rig_ros.interfaces import names
from rig_ros.run import launch_description, runner

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_DIR = PACKAGE_DIR / 'launch'
GRAPHS = ('practice', 'reach')

# Launch-argument strings, as `ros2 launch rig_ros <graph>.launch.py name:=value` passes them.
CASES = {
    'practice': [
        {},
        {'robots': '3', 'namespace': 'lab', 'task': 'pusher', 'seed': '7', 'run_dir': '/runs/a',
         'lockstep': 'false'},
        {'sim': 'false', 'robots': '2', 'camera_topic': '/io/internal_camera/head/image_raw'},
        {'task': 'multi_pusher', 'params_file': str(PACKAGE_DIR / 'config' / 'rig.yaml')},
        {'compose': 'true', 'robots': '2', 'namespace': 'lab'},
        {'compose': 'true', 'sim': 'false', 'camera_topic': '/camera/color'},
    ],
    'reach': [
        {},
        {'checkpoint': '/runs/a', 'robots': '2', 'namespace': 'lab/cell_1', 'sim': 'false'},
        {'robots': '3', 'nodes': 'robot_1/*, learner', 'namespace': 'lab'},
        {'compose': 'true', 'checkpoint': '/runs/a', 'robots': '2'},
    ],
}
CASE_IDS = [(name, i) for name in GRAPHS for i in range(len(CASES[name]))]


def load_launch_file(name: str) -> types.ModuleType:
    return load_script(LAUNCH_DIR / f'{name}.launch.py', f'{name}_launch')


def console_scripts() -> dict[str, str]:
    """Run setup.py with a stand-in `setup()` and return its console scripts."""
    captured: dict[str, Any] = {}
    code = compile((PACKAGE_DIR / 'setup.py').read_text(), 'setup.py', 'exec')
    original = setuptools.setup
    cwd = pathlib.Path.cwd()
    try:
        setuptools.setup = lambda **kwargs: captured.update(kwargs)
        os.chdir(PACKAGE_DIR)
        exec(code, {'__name__': '__main__', '__file__': str(PACKAGE_DIR / 'setup.py')})
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    scripts = {}
    for line in captured['entry_points']['console_scripts']:
        name, target = (part.strip() for part in line.split('='))
        scripts[name] = target
    return scripts


def cli_specs(name: str, values: dict[str, str]) -> list[graph.NodeSpec]:
    """Return the runner's specs for the same arguments given as `rig <graph>` options."""
    parser = argparse.ArgumentParser()
    getattr(graph_commands, f'add_{name}_arguments')(parser)
    argv = []
    for argument in graph.GRAPHS[name][1]:
        if argument.name not in values:
            continue
        flag = '--' + argument.name.replace('_', '-')
        if argument.kind == 'bool':
            on = graph.parse_argument(argument, values[argument.name])
            argv.append(flag if on else '--no-' + flag[2:])
        else:
            argv += [flag, values[argument.name]]
    return graph_commands.specs_from_args(name, parser.parse_args(argv))


# (a) Well-formed graphs.

@pytest.mark.parametrize('name, case', CASE_IDS)
def test_graph_is_well_formed(name, case):
    specs = graph.graph_from_arguments(name, CASES[name][case])
    full_names = [spec.fully_qualified_name for spec in specs]
    assert len(full_names) == len(set(full_names))
    scripts = console_scripts()
    for spec in specs:
        assert spec.package == graph.PACKAGE
        # The console script and the runner's `python -m` run the same module's main().
        assert scripts.get(spec.executable) == f'rig_ros.nodes.{spec.executable}:main', spec
        for path in spec.param_files:
            assert pathlib.Path(path).is_file(), path
            document = yaml.safe_load(pathlib.Path(path).read_text())
            assert all('ros__parameters' in value for value in document.values()), path
    if 'nodes' in CASES[name][case]:
        return  # one machine's share of the graph: test_nodes_select_a_machines_share
    learners = [spec for spec in specs if spec.executable == names.LEARNER]
    assert len(learners) == 1
    robots = int(CASES[name][case].get('robots', '1'))
    fleet = graph.fleet_namespace(CASES[name][case].get('namespace', ''))
    assert learners[0].namespace == fleet
    chains = {spec.namespace for spec in specs} - {fleet}
    assert chains == {graph.robot_namespace(i, fleet) for i in range(robots)}
    for spec in specs:
        for source, target in spec.remappings:
            if source in names.FLEET_TOPICS:  # every chain reaches the one learner
                assert target == graph.join_names(fleet, source)


@pytest.mark.parametrize('name, case', CASE_IDS)
def test_every_node_is_restarted_after_a_crash(name, case):
    for spec in graph.graph_from_arguments(name, CASES[name][case]):
        assert spec.respawn == graph.RESPAWN, spec


def test_graph_structure_per_mode():
    practice = graph.practice_graph(robots=2)
    reach = graph.reach_graph(checkpoint='/runs/a')
    by_name = {spec.fully_qualified_name: spec for spec in practice}
    assert by_name['/robot_1/policy'].parameters['explore'] is True
    assert by_name['/robot_1/policy'].parameters['robot_id'] == 'robot_1'
    assert by_name['/learner'].parameters['train'] is True
    assert by_name['/robot_0/mujoco_sim'].parameters['lockstep'] is True
    by_name = {spec.fully_qualified_name: spec for spec in reach}
    assert by_name['/robot_0/policy'].parameters['explore'] is False
    assert by_name['/robot_0/goal_scheduler'].parameters['goal_source'] == 'image'
    assert by_name['/learner'].parameters == {'task': 'reacher', 'train': False, 'seed': 0,
                                              'checkpoint': '/runs/a'}
    real = graph.practice_graph(sim=False, camera_topic='/camera/color')
    assert names.MUJOCO_SIM not in {spec.executable for spec in real}
    pipeline = next(spec for spec in real if spec.executable == names.CAMERA_PIPELINE)
    assert pipeline.remappings == ((names.CAMERA_IMAGE_TOPIC, '/camera/color'),)


def test_nodes_select_a_machines_share():
    full = graph.practice_graph(robots=3, namespace='lab')
    share = graph.practice_graph(robots=3, namespace='lab', nodes='robot_1/*, /lab/learner')
    assert share == [spec for spec in full if spec.namespace == '/lab/robot_1'
                     or spec.name == 'learner']
    with pytest.raises(ValueError, match='matches none'):
        graph.practice_graph(robots=3, namespace='lab', nodes='/robot_1/*')


@pytest.mark.parametrize('values, message', [
    ({'task': 'juggler'}, 'task must be one of'),
    ({'robots': '0'}, 'robots must be a positive integer'),
    ({'robots': 'two'}, 'robots must be an integer'),
    ({'sim': 'maybe'}, 'sim must be true or false'),
    ({'params_file': '/no/such.yaml'}, 'does not exist'),
    ({'namespace': '1lab'}, 'invalid namespace'),
    ({'robot': '2'}, 'unknown graph arguments: robot'),
])
def test_bad_arguments_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        graph.graph_from_arguments('practice', values)


def decompose(spec: graph.NodeSpec) -> list[graph.NodeSpec]:
    """Return the member specs a robot_chain spec runs (what each would get apart)."""
    members = []
    for name in spec.parameters['nodes']:
        prefix = name + ':'
        remappings = tuple((source[len(prefix):], target) for source, target in spec.remappings
                           if source.startswith(prefix))
        members.append(graph.NodeSpec(name, name, spec.namespace, spec.parameters.get(name, {}),
                                      spec.param_files, remappings, spec.package, spec.respawn))
    return members


@pytest.mark.parametrize('name, case', [(name, case) for name, case in CASE_IDS
                                        if 'compose' not in CASES[name][case]])
def test_composed_graph_runs_the_same_nodes(name, case):
    apart = graph.graph_from_arguments(name, CASES[name][case])
    composed = graph.graph_from_arguments(name, {**CASES[name][case], 'compose': 'true'})
    expanded = []
    for spec in composed:
        if spec.executable == names.ROBOT_CHAIN:
            assert spec.name == names.ROBOT_CHAIN
            members = decompose(spec)
            assert {m.executable for m in members} <= set(names.COMPOSABLE)
            expanded += members
        else:
            assert spec.executable not in names.COMPOSABLE
            expanded.append(spec)
    # Same nodes, names, parameters, files and remappings; only the processes differ.
    key = graph.NodeSpec.fully_qualified_name.fget
    assert sorted(expanded, key=key) == sorted(apart, key=key)
    chains = [spec for spec in composed if spec.executable == names.ROBOT_CHAIN]
    robots = int(CASES[name][case].get('robots', '1'))
    if 'nodes' not in CASES[name][case]:
        assert len(chains) == robots
    assert not any(spec.executable == names.ROBOT_CHAIN for spec in apart)


def test_existing_node_modules_run_with_python_m():
    for executable in console_scripts():
        path = PACKAGE_DIR / 'rig_ros' / 'nodes' / f'{executable}.py'
        if path.is_file():
            source = path.read_text()
            assert 'def main(' in source and "if __name__ == '__main__':" in source, path


# (b) The launch files and the runner describe the same graph.

@pytest.mark.parametrize('name, case', CASE_IDS)
def test_launch_file_cli_and_runner_agree(name, case):
    values = CASES[name][case]
    specs = graph.graph_from_arguments(name, values)
    assert load_launch_file(name).generate_node_specs(values) == specs
    assert cli_specs(name, values) == specs
    with tempfile.TemporaryDirectory() as params_dir:
        for spec in specs:
            command = runner.node_command(spec, params_dir)
            assert command[:3] == [sys.executable, '-m', f'rig_ros.nodes.{spec.executable}']
            parsed = runner.parse_ros_arguments(command)
            assert (parsed['name'], parsed['namespace']) == (spec.name, spec.namespace)
            assert parsed['remappings'] == list(spec.remappings)
            files = parsed['param_files']
            if spec.parameters:  # the overrides come last, keyed by the node's full name
                overrides = yaml.safe_load(pathlib.Path(files.pop()).read_text())
                assert overrides == {spec.fully_qualified_name: {
                    'ros__parameters': dict(spec.parameters)}}
            assert files == list(spec.param_files)


def test_cli_options_mirror_launch_arguments():
    for name in GRAPHS:
        parser = argparse.ArgumentParser()
        getattr(graph_commands, f'add_{name}_arguments')(parser)
        defaults = vars(parser.parse_args([]))
        for argument in graph.GRAPHS[name][1]:
            assert defaults[argument.name] == graph.parse_argument(
                argument, argument.launch_default) or (
                argument.kind == 'str' and defaults[argument.name] == '')


class _Recorder:
    """Stand-in for a launch class: records its constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorder):
    def perform(self, context: dict) -> str:
        return context[self.args[0]]


def fake_launch_modules() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions')}
    modules['launch'].LaunchDescription = _Recorder
    for action in ('DeclareLaunchArgument', 'OpaqueFunction', 'LogInfo', 'Shutdown'):
        setattr(modules['launch.actions'], action, type(action, (_Recorder,), {}))
    modules['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
    modules['launch_ros.actions'].Node = type('Node', (_Recorder,), {})
    return modules


@pytest.mark.parametrize('name, case', CASE_IDS)
def test_launch_description_turns_specs_into_nodes(name, case, monkeypatch):
    for module_name, module in fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, module_name, module)
    description = load_launch_file(name).generate_launch_description()
    *declared, profile, opaque = description.args[0]
    arguments = graph.GRAPHS[name][1]
    assert [d.args[0] for d in declared] == [a.name for a in arguments]
    # The one launch-only argument: the transports' profile (the runner reads the environment).
    assert profile.args[0] == launch_description.PROFILE_ARGUMENT
    assert profile.kwargs['default_value'] == launch_description.AUTO_PROFILE
    assert profile.kwargs['description']
    for declaration, argument in zip(declared, arguments):
        assert declaration.kwargs['default_value'] == argument.launch_default
        assert declaration.kwargs['description'] == argument.description
        assert declaration.kwargs.get('choices') == (
            list(argument.choices) if argument.choices else None)
    values = {a.name: CASES[name][case].get(a.name, a.launch_default) for a in arguments}
    nodes = opaque.kwargs['function'](values)
    specs = graph.graph_from_arguments(name, CASES[name][case])
    assert len(nodes) == len(specs)
    for node, spec in zip(nodes, specs):
        kwargs = node.kwargs
        assert (kwargs['package'], kwargs['executable'], kwargs['name'], kwargs['namespace']) == (
            spec.package, spec.executable, spec.name, spec.namespace)
        expected = list(spec.param_files) + ([dict(spec.parameters)] if spec.parameters else [])
        assert kwargs['parameters'] == expected
        assert kwargs['remappings'] == list(spec.remappings)
        assert kwargs['additional_env'] == launch_description.transport_environment(os.environ)
        # The same restarts as the runner's: every node, after the graph's first delay.
        assert (kwargs['respawn'], kwargs['respawn_delay']) == (True, spec.respawn.delay_s)
        assert_exits_handled(kwargs['on_exit'], spec)


def assert_exits_handled(on_exit: Any, spec: graph.NodeSpec) -> None:
    """Check: a crash is restarted (and said so), a clean exit or bad parameters stop it all."""
    def outcome(code: int, shutting_down: bool = False) -> list:
        result = on_exit(types.SimpleNamespace(returncode=code),
                         types.SimpleNamespace(is_shutdown=shutting_down))
        return [(type(action).__name__, action.kwargs) for action in result or []]
    name = spec.fully_qualified_name
    assert outcome(-9) == [('LogInfo', {'msg': f'{name} exited with code -9; restarting it '
                                               f'in {spec.respawn.delay_s:g} s'})]
    for code in (0, graph.EXIT_BAD_PARAMETERS):
        (kind, kwargs), = outcome(code)
        assert kind == 'Shutdown' and name in kwargs['reason'], (code, kwargs)
    assert outcome(-9, shutting_down=True) == []  # the launch's own stop


def test_transport_environment_respects_the_users_choice(tmp_path):
    own = str(tmp_path / 'mine.xml')
    package = launch_description.transport_environment({})
    assert package == {'FASTDDS_DEFAULT_PROFILES_FILE': launch_description.fastdds_profile()}
    assert package['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_rig.xml')
    assert launch_description.transport_environment({'FASTDDS_DEFAULT_PROFILES_FILE': own}) == {}
    assert launch_description.transport_environment(
        {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}) == {}
    assert launch_description.transport_environment({}, own) == {
        'FASTDDS_DEFAULT_PROFILES_FILE': own}
    assert launch_description.transport_environment({}, 'none') == {}


def profile_settings() -> dict[str, Optional[str]]:
    """Return the package profile's UDP initial-peer range and participant announcement period."""
    namespace = {'dds': 'http://www.eprosima.com'}
    root = ElementTree.parse(launch_description.fastdds_profile()).getroot()
    udp, = [descriptor for descriptor in root.iterfind('.//dds:transport_descriptor', namespace)
            if descriptor.findtext('dds:type', namespaces=namespace) == 'UDPv4']
    participant = root.find('.//dds:participant[@is_default_profile="true"]', namespace)
    return {'peers_range': udp.findtext('dds:maxInitialPeersRange', namespaces=namespace),
            'announcement_s': participant.findtext(
                'dds:rtps/dds:builtin/dds:discovery_config/dds:leaseAnnouncement/dds:sec',
                namespaces=namespace)}


def test_fastdds_profile_reaches_every_process_of_a_fleet_machine():
    # Four simulated robots and the learner on one machine, plus a test or a tool and a goal
    # sender: Fast DDS's own initial-peer range (4) would leave most of them to be found late.
    processes = len(graph.practice_graph('reacher', robots=4)) + 2
    settings = profile_settings()
    assert settings['peers_range'] is not None and int(settings['peers_range']) >= processes, (
        settings, processes)
    # Discovery measured with bench/discovery.py: 1 s announcements, not Fast DDS's 3 s.
    assert settings['announcement_s'] is not None and int(settings['announcement_s']) <= 1


def test_fastdds_accepts_the_package_profile(ros_domain_id, tmp_path):
    # A misspelt element makes Fast DDS drop the whole profile with only a log line.
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=launch_description.fastdds_profile(),
               ROS_LOG_DIR=str(tmp_path))
    env.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    code = ('import rclpy\nrclpy.init()\nnode = rclpy.create_node("profile_check")\n'
            'print("created", flush=True)\nnode.destroy_node()\nrclpy.shutdown()\n')
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and 'created' in done.stdout, output
    assert 'XMLPARSER' not in output and 'Error' not in output, output
