"""The RIG node graph, described once in plain Python (no rclpy, no launch).

`practice_graph` and `reach_graph` return `NodeSpec` lists. Two consumers turn them into
processes: `rig_ros.run.runner` (here, `rig practice` / `rig reach`) and `launch/*.launch.py`
(`ros2 launch` on a full ROS 2 install). Both read the same specs, so what runs here is what
launches there.

Layout (see docs/fleet.md):
- Every robot chain lives in its own namespace `robot_<i>` (also when there is one robot), under
  the optional fleet namespace: `/robot_0/camera_pipeline`, `/lab/robot_1/policy`, ... Topic and
  service names below are relative, so one chain's names are the same for every robot.
- One learner per fleet, in the fleet namespace. Per-robot nodes reach it through remappings:
  `rig/transition` and `rig/weights` resolve to `/<fleet>/rig/transition` and
  `/<fleet>/rig/weights` for every robot, whatever its namespace.
- One goal scheduler per robot: episodes, resets and goals are per robot.
- `sim=True` starts a `mujoco_sim` per robot. `sim=False` starts a `sawyer_driver` per robot
  (docs/real_robot.md), which serves the same `camera/image_raw`, `ee_velocity`, `robot/reset`
  and `robot/state` in the robot's namespace; its `backend` parameter (in the task's real-robot
  file, `TaskSpec.robot_config`) picks ros1_bridge topics or intera_interface; `camera_topic`
  remaps the camera input to another camera's topic.
- `nodes` selects one machine's share of the graph (globs such as `robot_1/*` or `learner`),
  so a fleet spans machines with one description.
- Parameter files are layered (`task_param_files`): the base `config/rig.yaml` (every task),
  the task's own file if its `TaskSpec.param_file` names one (only what it sets differently),
  with `sim=False` the task's real-robot file (`TaskSpec.robot_config`, e.g.
  config/sawyer_reacher.yaml), then the user's `params_file`; the spec's own `parameters`
  (task, seeds, modes) come last and win.
- Which tasks exist is `rig_ros.tasks` (the registry).
- `compose=True` runs each chain's per-frame nodes (mujoco_sim with `sim`, camera_pipeline,
  vae_encoder, policy) in one `robot_chain` process on one executor, as ROS 2 composition
  does: the same nodes, names, parameter files and remappings (`compose_chain`).
- Restarts: every node of both graphs carries `RESPAWN` (`NodeSpec.respawn`): a crashed node
  is started again, by launch (`respawn`, `respawn_delay`) and by the runner (with back-off);
  practice heals itself, and `rig reach` keeps serving goal images. The nodes make that safe:
  the learner resumes its run directory, latched goals and weights reach a restarted node,
  and a robot stands still while a node it needs is missing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import fnmatch
import pathlib
import signal
from typing import Any, Callable, Mapping, Optional, Sequence

from rig_ros import tasks
from rig_ros.interfaces.names import (
    CAMERA_IMAGE_TOPIC, CAMERA_PIPELINE, COMPOSABLE, GOAL_SCHEDULER, LEARNER,
    LEARNER_STATUS_TOPIC, MUJOCO_SIM, POLICY, ROBOT_CHAIN, SAWYER_DRIVER, TRANSITION_TOPIC,
    VAE_ENCODER, WEIGHTS_TOPIC)

PACKAGE = 'rig_ros'
BASE_CONFIG = 'rig'  # config/rig.yaml: the parameters every task shares
ROBOT_NAMESPACE_PREFIX = 'robot_'
# A node's exit code for parameters it refuses (edge.entry): a restart would fail the same way.
EXIT_BAD_PARAMETERS = 2
# Exit codes of a node stopped on purpose, never restarted: rclpy nodes exit 0 after SIGINT; a
# plain Python process dies of it (-2), a shell reports 128 + 2.
CLEAN_EXITS = (0, -signal.SIGINT, 128 + signal.SIGINT)


@dataclass(frozen=True)
class RespawnPolicy:
    """How a node that crashed is started again (the graph's one description of restarts).

    A crash is any exit but a clean one (CLEAN_EXITS: someone stopped the node on purpose) that
    the runner or the launch did not cause by stopping the graph.
    launch_ros restarts after `delay_s` each time (`respawn_delay`); on a clean exit or
    EXIT_BAD_PARAMETERS the launch files shut the launch down instead
    (`launch_description.on_node_exit`).
    The runner (`run.runner.RestartTracker`) backs off: it waits delay_s before the first
    restart, twice as long before each next one up to max_delay_s, and delay_s again once the
    node had stayed up for stable_s. It gives up, and stops the graph saying why, when a node
    would restart more than max_restarts times within window_s, exits cleanly or exits with
    EXIT_BAD_PARAMETERS.
    """

    delay_s: float = 1.0
    max_delay_s: float = 30.0
    stable_s: float = 60.0
    max_restarts: int = 10
    window_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ('delay_s', 'max_delay_s', 'stable_s', 'window_s'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)!r}')
        if self.max_delay_s < self.delay_s or self.max_restarts < 1:
            raise ValueError(f'max_delay_s must be >= delay_s and max_restarts >= 1: {self}')


RESPAWN = RespawnPolicy()  # every node of the practice and reach graphs


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: what to run, under which name, with which settings.

    name: node name (`-r __node:=`).
    executable: console script of the `package` (also `rig_ros.nodes.<executable>:main`).
    namespace: absolute namespace (`-r __ns:=`), '/' for the root.
    parameters: overrides applied after every parameter file.
    param_files: YAML files, applied in order (later files win).
    remappings: (from, to) topic/service remappings.
    package: the ROS package of the executable.
    respawn: start the node again after a crash, as this says; None: its exit stops the graph.
    """

    name: str
    executable: str
    namespace: str = '/'
    parameters: Mapping[str, Any] = field(default_factory=dict)
    param_files: tuple[str, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    package: str = PACKAGE
    respawn: Optional[RespawnPolicy] = None

    def __post_init__(self) -> None:
        if not _is_name(self.name):
            raise ValueError(f'invalid node name {self.name!r}')
        if not self.namespace.startswith('/') or (
                self.namespace != '/' and not all(
                    _is_name(part) for part in self.namespace[1:].split('/'))):
            raise ValueError(f'invalid namespace {self.namespace!r} of node {self.name!r}')
        object.__setattr__(self, 'parameters', dict(self.parameters))
        object.__setattr__(self, 'param_files', tuple(str(p) for p in self.param_files))
        object.__setattr__(self, 'remappings', tuple(
            (str(src), str(dst)) for src, dst in self.remappings))

    @property
    def fully_qualified_name(self) -> str:
        """`/namespace/name`, the node's name in the ROS graph."""
        return join_names(self.namespace, self.name)


def _is_name(token: str) -> bool:
    return bool(token) and not token[0].isdigit() and all(
        c.isalnum() or c == '_' for c in token) and token.isascii()


def join_names(namespace: str, name: str) -> str:
    """Join a namespace and a relative name into an absolute name."""
    namespace = '/' + namespace.strip('/')
    return namespace.rstrip('/') + '/' + name.strip('/')


def fleet_namespace(namespace: str = '') -> str:
    """Return the absolute fleet namespace: '/' or '/<namespace>'."""
    return '/' + namespace.strip('/')


def robot_namespace(index: int, namespace: str = '') -> str:
    """Return the absolute namespace of robot chain `index` under the fleet `namespace`."""
    return join_names(namespace, f'{ROBOT_NAMESPACE_PREFIX}{index}')


def config_file(stem: str) -> str:
    """Return `config/<stem>.yaml`: the installed share's, else the source tree's."""
    name = f'{stem}.yaml'
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = pathlib.Path(get_package_share_directory(PACKAGE)) / 'config' / name
        if installed.is_file():
            return str(installed)
    except (ImportError, LookupError, KeyError, ValueError):
        pass
    source = pathlib.Path(__file__).resolve().parents[1] / 'config' / name
    if source.is_file():
        return str(source)
    raise FileNotFoundError(f'no parameter file {name} in the {PACKAGE} share directory or '
                            f'{source.parent}')


def task_param_files(task: str, params_file: Optional[str] = None,
                     sim: bool = True) -> tuple[str, ...]:
    """Return the parameter files of `task`'s nodes, in the order they apply (later wins).

    config/rig.yaml; the task's own file (`TaskSpec.param_file`), if any; with `sim` False its
    real-robot file (`TaskSpec.robot_config`: driver, safety box, camera crop); `params_file`.
    """
    spec = tasks.task(task)
    stems = [BASE_CONFIG] + ([spec.param_file] if spec.param_file else [])
    if not sim:
        if not spec.robot_config:
            raise ValueError(f'task {task!r} has no real-robot parameter file; run it with sim')
        stems.append(spec.robot_config)
    return tuple(config_file(stem) for stem in stems) + (
        (str(params_file),) if params_file else ())


def _check_common(task: str, robots: int, params_file: Optional[str]) -> None:
    tasks.task(task)
    if isinstance(robots, bool) or not isinstance(robots, int) or robots < 1:
        raise ValueError(f'robots must be a positive integer, got {robots!r}')
    if params_file and not pathlib.Path(params_file).is_file():
        raise ValueError(f'params_file {params_file!r} does not exist')


def _robot_chain(index: int, *, namespace: str, param_files: tuple[str, ...], task: str,
                 sim: bool, lockstep: bool, seed: int, camera_topic: Optional[str],
                 practice: bool, compose: bool = False) -> list[NodeSpec]:
    """Describe one robot's nodes: sim, pipeline, encoder, policy and goal scheduler."""
    ns = robot_namespace(index, namespace)
    robot_id = ns.strip('/')
    robot_seed = seed + 1000 * (index + 1)
    weights = ((WEIGHTS_TOPIC, join_names(namespace, WEIGHTS_TOPIC)),)
    transitions = ((TRANSITION_TOPIC, join_names(namespace, TRANSITION_TOPIC)),)
    status = ((LEARNER_STATUS_TOPIC, join_names(namespace, LEARNER_STATUS_TOPIC)),)
    nodes = []
    if sim:
        nodes.append(NodeSpec(MUJOCO_SIM, MUJOCO_SIM, ns, {
            'task': task, 'lockstep': lockstep, 'seed': robot_seed}, param_files))
    else:
        nodes.append(NodeSpec(SAWYER_DRIVER, SAWYER_DRIVER, ns, {}, param_files))
    camera_remap = ((CAMERA_IMAGE_TOPIC, camera_topic),) if camera_topic else ()
    nodes.append(NodeSpec(CAMERA_PIPELINE, CAMERA_PIPELINE, ns, {}, param_files, camera_remap))
    nodes.append(NodeSpec(VAE_ENCODER, VAE_ENCODER, ns, {}, param_files, weights))
    # A simulated robot acts at once (a real one waits for policy/activate); a lockstep sim
    # steps per command, so its policy acts once per latent instead of on a 10 Hz timer.
    nodes.append(NodeSpec(POLICY, POLICY, ns, {
        'robot_id': robot_id, 'explore': practice, 'publish_transitions': practice,
        'start_active': sim, 'act_on_latent': sim and lockstep, 'seed': robot_seed + 1},
        param_files, weights + transitions))
    # The scheduler sees its robot's episode ends in the fleet's transitions (robot_id).
    nodes.append(NodeSpec(GOAL_SCHEDULER, GOAL_SCHEDULER, ns, {
        'goal_source': 'prior' if practice else 'image', 'seed': robot_seed + 2},
        param_files, weights + transitions + status))
    nodes = [dataclasses.replace(spec, respawn=RESPAWN) for spec in nodes]
    return compose_chain(nodes) if compose else nodes


def compose_chain(nodes: Sequence[NodeSpec]) -> list[NodeSpec]:
    """Replace a chain's composable nodes by one `robot_chain` spec; keep the others.

    The composed spec keeps what each member would get apart: its name (the executable's),
    the shared parameter files, its overrides as `<member>.<parameter>` (parameter `nodes`
    lists the members in start order) and its remappings as node-specific rules
    (`<member>:from` -> `to`). The spec takes the first member's place.
    """
    members = [spec for spec in nodes if spec.executable in COMPOSABLE]
    if not members:
        return list(nodes)
    first = members[0]
    for spec in members:
        if (spec.namespace, spec.param_files, spec.package, spec.respawn) != (
                first.namespace, first.param_files, first.package, first.respawn) or (
                spec.name != spec.executable):
            raise ValueError(f'cannot compose {spec.fully_qualified_name} with '
                             f'{first.fully_qualified_name}: namespace, parameter files, '
                             'restarts or name differ')
    parameters: dict[str, Any] = {'nodes': [spec.executable for spec in members]}
    parameters.update({spec.name: dict(spec.parameters) for spec in members if spec.parameters})
    remappings = tuple((f'{spec.name}:{source}', target) for spec in members
                       for source, target in spec.remappings)
    chain = NodeSpec(ROBOT_CHAIN, ROBOT_CHAIN, first.namespace, parameters, first.param_files,
                     remappings, first.package, first.respawn)
    result = []
    for spec in nodes:
        if spec is first:
            result.append(chain)
        elif spec not in members:
            result.append(spec)
    return result


def practice_graph(task: str = 'reacher', sim: bool = True, robots: int = 1,
                   params_file: Optional[str] = None, lockstep: bool = True,
                   namespace: str = '', seed: int = 0, run_dir: Optional[str] = None,
                   camera_topic: Optional[str] = None,
                   nodes: Optional[str] = None, compose: bool = False) -> list[NodeSpec]:
    """Practice: robots act towards imagined goals; one learner trains and broadcasts weights.

    task: a `rig_ros.tasks` name (its parameter files, see the module doc, and sim scene).
    sim: one MuJoCo sim per robot; False expects real robot drivers (see the module doc).
    robots: number of robot chains, namespaced robot_0 .. robot_<robots-1>.
    params_file: YAML applied after the package's files (`task_param_files`; later keys win).
    lockstep: the sim advances one control period per command (fast); False: 10 Hz wall clock.
        The sims and their policies read it.
    namespace: fleet namespace that holds the learner and the robot namespaces.
    seed: base seed; every robot and node derives its own from it.
    run_dir: where the learner writes checkpoints and logs (its parameter default if None).
    camera_topic: remap each chain's camera/image_raw to this name (real camera drivers).
    nodes: start only the nodes whose names match one of these comma-separated globs, relative
        to the fleet namespace unless absolute (one machine's share of a fleet, e.g.
        'robot_1/*' or 'learner').
    compose: run each chain's per-frame nodes in one `robot_chain` process (`compose_chain`);
        its node names stay, `nodes` globs match the composed process's name.
    """
    learner_parameters: dict[str, Any] = {'task': task, 'train': True, 'seed': seed}
    if run_dir:
        learner_parameters['run_dir'] = str(run_dir)
    return _graph(True, learner_parameters, task=task, sim=sim, robots=robots,
                  params_file=params_file, lockstep=lockstep, namespace=namespace, seed=seed,
                  camera_topic=camera_topic, nodes=nodes, compose=compose)


def reach_graph(task: str = 'reacher', sim: bool = True, robots: int = 1,
                params_file: Optional[str] = None, lockstep: bool = True,
                namespace: str = '', seed: int = 0, checkpoint: Optional[str] = None,
                camera_topic: Optional[str] = None,
                nodes: Optional[str] = None, compose: bool = False) -> list[NodeSpec]:
    """Reach (test time): goal images arrive on rig/goal_image; no exploration, no learning.

    The learner only serves the checkpoint's weights (`train: false`) on the latched weights
    topic, so the chain's nodes load weights exactly as in practice. Arguments as in
    `practice_graph`; checkpoint: the run directory or checkpoint file to serve.
    """
    learner_parameters: dict[str, Any] = {'task': task, 'train': False, 'seed': seed}
    if checkpoint:
        learner_parameters['checkpoint'] = str(checkpoint)
    return _graph(False, learner_parameters, task=task, sim=sim, robots=robots,
                  params_file=params_file, lockstep=lockstep, namespace=namespace, seed=seed,
                  camera_topic=camera_topic, nodes=nodes, compose=compose)


def _graph(practice: bool, learner_parameters: dict[str, Any], *, task: str, sim: bool,
           robots: int, params_file: Optional[str], lockstep: bool, namespace: str, seed: int,
           camera_topic: Optional[str], nodes: Optional[str], compose: bool) -> list[NodeSpec]:
    # The robot chains and the fleet's learner, shared by practice and reach.
    _check_common(task, robots, params_file)
    files = task_param_files(task, params_file, sim)
    specs = []
    for index in range(robots):
        specs += _robot_chain(index, namespace=namespace, param_files=files, task=task,
                              sim=sim, lockstep=lockstep, seed=seed, camera_topic=camera_topic,
                              practice=practice, compose=compose)
    specs.append(NodeSpec(LEARNER, LEARNER, fleet_namespace(namespace), learner_parameters,
                          files, respawn=RESPAWN))
    return select_nodes(specs, nodes, namespace)


def select_nodes(specs: list[NodeSpec], patterns: Optional[str],
                 namespace: str = '') -> list[NodeSpec]:
    """Keep the specs whose fully qualified names match a comma-separated glob pattern.

    Patterns without a leading '/' are relative to the fleet `namespace`.
    """
    if not patterns:
        return specs
    globs = [pattern if pattern.startswith('/') else join_names(namespace, pattern)
             for pattern in (p.strip() for p in patterns.split(',')) if pattern]
    selected = [spec for spec in specs
                if any(fnmatch.fnmatchcase(spec.fully_qualified_name, g) for g in globs)]
    if not selected:
        raise ValueError(f'nodes {patterns!r} matches none of '
                         f'{", ".join(spec.fully_qualified_name for spec in specs)}')
    return selected


def check_graph(specs: Sequence[NodeSpec]) -> None:
    """Raise ValueError unless every node has its own fully qualified name."""
    seen: set[str] = set()
    for spec in specs:
        if spec.fully_qualified_name in seen:
            raise ValueError(f'two nodes are named {spec.fully_qualified_name}')
        seen.add(spec.fully_qualified_name)


# The graphs' arguments, shared by the launch files (DeclareLaunchArgument) and the CLI.

@dataclass(frozen=True)
class GraphArgument:
    """One argument of a graph function, as a launch argument and a command-line option."""

    name: str
    kind: str  # 'str', 'bool', 'int' or 'path' ('' means None)
    default: Any
    description: str
    choices: Optional[tuple[str, ...]] = None

    @property
    def launch_default(self) -> str:
        """The default as a launch-argument string."""
        if self.kind == 'bool':
            return 'true' if self.default else 'false'
        return '' if self.default is None else str(self.default)


_TASK = GraphArgument('task', 'str', 'reacher', 'the task: scene, image crop and model sizes',
                      tasks.TASK_NAMES)
_SIM = GraphArgument('sim', 'bool', True, 'simulate each robot in MuJoCo; false expects real '
                     'robot drivers in the robot namespaces')
_ROBOTS = GraphArgument('robots', 'int', 1, 'number of robot chains (namespaces robot_0, '
                        'robot_1, ...) that feed the one learner')
_NAMESPACE = GraphArgument('namespace', 'str', '', 'fleet namespace holding the learner and '
                           'the robot namespaces (empty: the root)')
_PARAMS_FILE = GraphArgument('params_file', 'path', None, 'YAML parameter file applied after '
                             "the package's: config/rig.yaml and the task's own files")
_LOCKSTEP = GraphArgument('lockstep', 'bool', True, 'the sim advances one control period per '
                          'command (fast practice); false runs it at 10 Hz wall clock')
_SEED = GraphArgument('seed', 'int', 0, 'base random seed of every node')
_CAMERA_TOPIC = GraphArgument('camera_topic', 'str', '', f"remap each chain's "
                              f'{CAMERA_IMAGE_TOPIC} to this topic (empty: no remapping)')
_RUN_DIR = GraphArgument(
    'run_dir', 'path', None, 'learner run directory (frames, VAE, checkpoints, logs): an '
    'empty one explores, pretrains the VAE, then practises; an existing one is resumed '
    '(default: $ROS_HOME/rig_ros/practice)')
_NODES = GraphArgument('nodes', 'str', '', 'start only the nodes matching these comma-separated '
                       'name globs, relative to the fleet namespace unless absolute, e.g. '
                       "robot_1/* or learner (empty: all); one machine's share of a fleet")
_COMPOSE = GraphArgument('compose', 'bool', False, "run each robot chain's per-frame nodes "
                         '(sim, camera_pipeline, vae_encoder, policy) in one robot_chain '
                         'process on one executor; false: one process per node')
_CHECKPOINT = GraphArgument('checkpoint', 'path', None, 'run directory or checkpoint whose '
                            'weights the learner serves')

PRACTICE_ARGUMENTS = (_TASK, _SIM, _ROBOTS, _NAMESPACE, _PARAMS_FILE, _LOCKSTEP, _SEED,
                      _CAMERA_TOPIC, _NODES, _RUN_DIR, _COMPOSE)
REACH_ARGUMENTS = (_TASK, _SIM, _ROBOTS, _NAMESPACE, _PARAMS_FILE, _LOCKSTEP, _SEED,
                   _CAMERA_TOPIC, _NODES, _CHECKPOINT, _COMPOSE)

_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def parse_argument(argument: GraphArgument, text: str) -> Any:
    """Turn a launch-argument string into the graph function's value."""
    text = text.strip()
    if argument.kind == 'bool':
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f'argument {argument.name} must be true or false, got {text!r}')
    if argument.kind == 'int':
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f'argument {argument.name} must be an integer, got {text!r}') from None
    if argument.choices and text not in argument.choices:
        raise ValueError(f'argument {argument.name} must be one of '
                         f'{", ".join(argument.choices)}, got {text!r}')
    if argument.kind == 'path':
        return text or None
    return text


def parse_arguments(arguments: Sequence[GraphArgument],
                    values: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of a graph function from launch-argument strings (defaults if absent)."""
    unknown = set(values) - {argument.name for argument in arguments}
    if unknown:
        raise ValueError(f'unknown graph arguments: {", ".join(sorted(unknown))}')
    return {argument.name: parse_argument(argument, values.get(argument.name,
                                                               argument.launch_default))
            for argument in arguments}


GRAPHS: dict[str, tuple[Callable[..., list[NodeSpec]], tuple[GraphArgument, ...]]] = {
    'practice': (practice_graph, PRACTICE_ARGUMENTS),
    'reach': (reach_graph, REACH_ARGUMENTS),
}


def graph_from_arguments(graph: str, values: Mapping[str, str]) -> list[NodeSpec]:
    """Build the `graph` ('practice' or 'reach') from launch-argument strings."""
    function, arguments = GRAPHS[graph]
    specs = function(**parse_arguments(arguments, values))
    check_graph(specs)
    return specs
