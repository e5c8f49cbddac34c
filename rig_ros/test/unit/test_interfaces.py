"""Every name and QoS profile of the graph is defined once, in `rig_ros.interfaces`.

The package's Python sources (rig_ros/rig_ros/**/*.py but interfaces/) are read with `ast`
and checked against these rules:

1. No string literal is a graph name. A name is a topic or service of `interfaces.names` (a
   `*_TOPIC` or `*_SERVICE` constant, with or without its leading '/'), anything shaped like
   one (a single token `rig/...`, `robot/...`, `sim/...`, `camera/...`, `policy/...`,
   `driver/...`, `io/...`, or `ee_velocity`; f-string parts included), or an executable or
   node name with an underscore (`mujoco_sim`, `rig_operator`; plain words such as 'policy'
   or 'learner' are also dictionary keys, and are checked by position instead, see 2).
   Documentation is exempt: a string that is a statement of its own (a module, class,
   function or attribute docstring), and prose (help text, log messages: a literal with
   whitespace never matches a name, so a sentence may mention `rig/goal_image`).
2. Where the code names something, the name is not a literal: the topic or service argument
   of create_publisher / create_subscription / create_client / create_service; a node's name
   (Node(...), rclpy.create_node(...), super().__init__(...) of a Node subclass); a launch
   Node's executable and name; a Weights `model_name` (keyword, assignment or comparison).
3. No QoS profile is built outside interfaces/qos.py: no QoSProfile(...) call, no rclpy
   `qos_profile_*` preset, no bare depth (an int) as the QoS of a publisher or subscription.
4. Nothing is defined twice: no module-level constant elsewhere holds a value of
   `interfaces.names` or is a `*_QOS` profile; within names.py each constant is assigned once
   and, per kind (topics and services; executables and node names; models), no two
   constants share a value. setup.py's console scripts are `names.EXECUTABLES`.
"""

import ast
import pathlib
import re
from typing import Iterator, Optional

import pytest

from rig_ros.interfaces import names

PACKAGE = pathlib.Path(names.__file__).resolve().parents[1]
SETUP = PACKAGE.parent / 'setup.py'
NAMES_FILE = PACKAGE / 'interfaces' / 'names.py'
NAME_SHAPE = re.compile(r'/?(?:(?:rig|robot|sim|camera|policy|driver|io)(?:/\w+)+|ee_velocity)')
PUBSUB = {'create_publisher': 2, 'create_subscription': 3}  # index of the QoS argument
ENDPOINTS = ('create_publisher', 'create_subscription', 'create_client', 'create_service')
NODE_CALLS = ('Node', 'create_node')


def _constants() -> dict[str, object]:
    return {key: value for key, value in vars(names).items() if key.isupper()}


def _of_kind(*suffixes: str) -> dict[str, str]:
    return {key: value for key, value in _constants().items()
            if isinstance(value, str) and key.endswith(suffixes)}


GRAPH_NAMES = _of_kind('_TOPIC', '_SERVICE')
NODE_NAMES = {**{value: value for value in names.EXECUTABLES}, **_of_kind('_NODE')}
MODEL_NAMES = _of_kind('_MODEL')
FORBIDDEN = ({value.lstrip('/') for value in GRAPH_NAMES.values()}
             | {value for value in NODE_NAMES.values() if '_' in value})


def _sources() -> Iterator[tuple[pathlib.Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob('*.py')):
        if 'interfaces' not in path.relative_to(PACKAGE).parts:
            yield path, ast.parse(path.read_text(), str(path))


def _documentation(tree: ast.Module) -> set[int]:
    """Return the ids of the string literals that are statements of their own."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def _where(path: pathlib.Path, node: ast.AST) -> str:
    return f'{path.relative_to(PACKAGE.parent)}:{getattr(node, "lineno", 0)}'


def _call_name(call: ast.Call) -> str:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ''


def _literal(node: Optional[ast.AST]) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str))


def _argument(call: ast.Call, index: int, *keywords: str) -> Optional[ast.AST]:
    for keyword in call.keywords:
        if keyword.arg in keywords:
            return keyword.value
    return call.args[index] if len(call.args) > index else None


def _node_classes(tree: ast.Module) -> Iterator[ast.ClassDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id == 'Node')
                or (isinstance(base, ast.Attribute) and base.attr == 'Node')
                for base in node.bases):
            yield node


def _is_model_name(node: ast.AST) -> bool:
    return ((isinstance(node, ast.Attribute) and node.attr == 'model_name')
            or (isinstance(node, ast.Name) and node.id == 'model_name'))


def _named_by_position(tree: ast.Module) -> Iterator[ast.AST]:
    """Yield the expressions in name positions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in ENDPOINTS:
                yield from [_argument(node, 1, 'topic', 'srv_name')]
            if name in NODE_CALLS:
                yield from [_argument(node, 0, 'node_name')]
                yield from [kw.value for kw in node.keywords if kw.arg in ('executable', 'name')]
            yield from [kw.value for kw in node.keywords if kw.arg == 'model_name']
        elif isinstance(node, ast.Assign) and any(map(_is_model_name, node.targets)):
            yield node.value
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_is_model_name, sides)):
                yield from sides
    for node_class in _node_classes(tree):
        for call in ast.walk(node_class):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == '__init__'
                    and isinstance(call.func.value, ast.Call)
                    and _call_name(call.func.value) == 'super'):
                yield from [_argument(call, 0, 'node_name')]


def name_literals(tree: ast.Module) -> Iterator[ast.AST]:
    """Yield the string literals that are graph, executable or node names (rule 1)."""
    documentation = _documentation(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in documentation
                and (node.value.lstrip('/') in FORBIDDEN or NAME_SHAPE.fullmatch(node.value))):
            yield node


def position_literals(tree: ast.Module) -> Iterator[ast.AST]:
    """Yield the literals in name positions (rule 2)."""
    return (node for node in _named_by_position(tree) if _literal(node))


def qos_outside(tree: ast.Module) -> Iterator[ast.AST]:
    """Yield QoS profiles built here (rule 3)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == 'QoSProfile':
            yield node
        elif ((isinstance(node, ast.Name) and node.id.startswith('qos_profile_'))
              or (isinstance(node, ast.Attribute) and node.attr.startswith('qos_profile_'))
              or (isinstance(node, ast.alias) and node.name.startswith('qos_profile_'))):
            yield node
        elif isinstance(node, ast.Call) and _call_name(node) in PUBSUB:
            qos = _argument(node, PUBSUB[_call_name(node)], 'qos_profile')
            if isinstance(qos, ast.Constant):
                yield qos


def redefinitions(tree: ast.Module) -> Iterator[ast.AST]:
    """Yield module-level constants that hold a name's value or a QoS profile (rule 4)."""
    values = {value for value in _constants().values() if isinstance(value, str)}
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign):
            targets, value = [statement.target], statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper() and (
                    target.id.endswith('_QOS')
                    or (isinstance(value, ast.Constant) and value.value in values)):
                yield statement


CHECKS = (name_literals, position_literals, qos_outside, redefinitions)
BAD_SOURCE = """
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile

LEARNER = 'learner'
STATE_QOS = QoSProfile(depth=1)


class Thing(Node):
    \"\"\"Mentions rig/image in prose: fine.\"\"\"

    def __init__(self, namespace: str) -> None:
        super().__init__('thing')
        self.create_publisher(Image, f'{namespace}/rig/image', 10)
        self.create_service(Trigger, 'reset', self.reset)
        if msg.model_name == 'vae':
            msg.model_name = 'policy'
        self.get_logger().info('published on rig/image')
"""


def test_the_checks_catch_what_they_describe():
    tree = ast.parse(BAD_SOURCE)
    found = {check.__name__: sorted(ast.unparse(node) for node in check(tree))
             for check in CHECKS}
    assert found == {
        'name_literals': ["'/rig/image'"],
        'position_literals': ["'policy'", "'reset'", "'thing'", "'vae'",
                              "f'{namespace}/rig/image'"],
        'qos_outside': ['10', 'QoSProfile(depth=1)', 'qos_profile_sensor_data'],
        'redefinitions': ["LEARNER = 'learner'", 'STATE_QOS = QoSProfile(depth=1)'],
    }


@pytest.mark.parametrize('check', CHECKS, ids=lambda check: check.__name__)
def test_the_package_passes(check):
    found = [f'{_where(path, node)}: {ast.unparse(node)}'
             for path, tree in _sources() for node in check(tree)]
    assert not found, f'{check.__doc__}\n' + '\n'.join(found)


def test_names_module_defines_each_name_once():
    tree = ast.parse(NAMES_FILE.read_text())
    assigned = [target.id for statement in tree.body if isinstance(statement, ast.Assign)
                for target in statement.targets if isinstance(target, ast.Name)]
    assert len(assigned) == len(set(assigned)), assigned
    kinds = {'topics and services': GRAPH_NAMES, 'executables and nodes': NODE_NAMES,
             'models': MODEL_NAMES}
    for kind, constants in kinds.items():
        bare = [value.lstrip('/') for value in constants.values()]
        assert len(bare) == len(set(bare)), f'{kind} share a value: {sorted(bare)}'
    executables = set(names.EXECUTABLES)
    unknown = [key for key, value in _constants().items() if isinstance(value, str)
               and value not in executables and not key.endswith(
                   ('_TOPIC', '_SERVICE', '_NODE', '_MODEL', '_SUFFIX'))]
    assert not unknown, f'names of no known kind: {unknown}'
    assert set(names.KNOWN_MODELS) == set(MODEL_NAMES.values())
    assert set(names.COMPOSABLE) <= executables and len(executables) == len(names.EXECUTABLES)


def test_setup_installs_the_executables():
    tree = ast.parse(SETUP.read_text())
    nodes = next(statement.value for statement in tree.body
                 if isinstance(statement, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == 'NODES' for t in statement.targets))
    assert sorted(ast.literal_eval(nodes)) == sorted(names.EXECUTABLES)
