"""Dataclass configs from ROS parameters: declare every field, build, validate, keep in sync.

`ConfigParameters(node, SomeConfig)` declares one parameter per dataclass field (nested
dataclasses flatten to dotted names, as in YAML: `crop.top`), with the field's default and a
description, reads the values back and builds the config, whose `__post_init__` validates it.
A bad value is logged with the parameter's name and raises `ParameterError`, so the node exits
non-zero at startup. Afterwards an on-set-parameters callback rejects values the config would
refuse, and accepted changes rebuild `config` (and call `on_change`).

Field types: bool, int, str (statically typed parameters); float (accepts integers too, so
`lr: 1` works); lists and tuples of those; `Literal[...]` of strings; `Optional[...]` of any of
those (unset parameter -> None); nested dataclasses, optionally `Optional` (None when none of
its required fields is set). Descriptions come from `field(metadata={'description': ...})`,
else `field_descriptions`: the string under the field or its `name: text` docstring line.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import types
import typing
from typing import Any, Callable, Generic, Iterable, Mapping, Optional, TypeVar, Union

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

T = TypeVar('T')

_MISSING = dataclasses.MISSING
_SCALARS = {bool: 'a boolean', int: 'an integer', float: 'a number', str: 'a string'}
_STATIC_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    str: Parameter.Type.STRING,
}


class ParameterError(ValueError):
    """A parameter value that the node's config refuses."""


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """One ROS parameter standing for one (possibly nested) dataclass field."""

    name: str  # dotted ROS parameter name
    path: tuple[str, ...]  # field names from the root dataclass
    scalar: type  # bool, int, float or str
    sequence: Optional[type]  # list, tuple or None
    length: Optional[int]  # fixed tuple length
    choices: Optional[tuple[str, ...]]
    optional: bool  # None is a valid value
    default: Any  # _MISSING when the field has none
    description: str

    def check(self, value: Any) -> Any:
        """Return the field value for a parameter value, or raise ParameterError."""
        if value is None:
            if self.optional:
                return None
            raise ParameterError(f'parameter {self.name!r} is required ({self.description})')
        if self.sequence is None:
            return self._check_scalar(value, self.name)
        if not isinstance(value, (list, tuple)) and not hasattr(value, 'tolist'):
            raise ParameterError(
                f'parameter {self.name!r} must be a list of {_plural(self.scalar)}, '
                f'got {value!r}')
        items = [self._check_scalar(item, f'{self.name}[{i}]')
                 for i, item in enumerate(list(value))]
        if self.length is not None and len(items) != self.length:
            raise ParameterError(f'parameter {self.name!r} must have {self.length} elements, '
                                 f'got {len(items)}')
        return tuple(items) if self.sequence is tuple else items

    def _check_scalar(self, value: Any, name: str) -> Any:
        if hasattr(value, 'item') and not isinstance(value, (str, bytes)):
            value = value.item()  # numpy scalars from array parameters
        ok = (isinstance(value, bool) if self.scalar is bool
              else isinstance(value, (int, float)) and not isinstance(value, bool)
              if self.scalar is float
              else isinstance(value, self.scalar) and not isinstance(value, bool))
        if not ok:
            raise ParameterError(
                f'parameter {name!r} must be {_SCALARS[self.scalar]}, got {value!r}')
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f'parameter {name!r} must be one of '
                                 f'{", ".join(self.choices)}, got {value!r}')
        return value

    def descriptor(self, read_only: bool) -> ParameterDescriptor:
        """Return the descriptor: typed when the type is fixed, dynamic for numbers and lists."""
        descriptor = ParameterDescriptor(name=self.name, description=self.description,
                                         read_only=read_only)
        if self.choices:
            descriptor.additional_constraints = 'one of: ' + ', '.join(self.choices)
        if self._static_type() is None:
            descriptor.dynamic_typing = True
        return descriptor

    def _static_type(self) -> Optional[Parameter.Type]:
        if self.sequence is not None or self.default is _MISSING or self.default is None:
            return None
        return _STATIC_TYPES.get(self.scalar)

    def ros_default(self) -> Any:
        """Return the value to declare: the default as a ROS value, None when unset."""
        if self.default is _MISSING or self.default is None:
            return None
        if self.sequence is not None:
            return list(self.default)
        return self.default


def _plural(scalar: type) -> str:
    return {bool: 'booleans', int: 'integers', float: 'numbers', str: 'strings'}[scalar]


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
        raise TypeError(f'unsupported union type {annotation!r}')
    return annotation, False


def field_descriptions(config_type: type) -> dict[str, str]:
    """Map a dataclass's field names to their descriptions, from its source and docstring.

    Two forms, as written across the package: a string literal right under the field (an
    attribute docstring, whitespace collapsed), or a `name: text` (or `name (type): text`)
    line of the class docstring, continued by more deeply indented lines. Fields of dataclass
    bases are described by the bases' text; a field's own class wins, its attribute
    docstring over its docstring line.
    """
    names = {field.name for field in dataclasses.fields(config_type)}
    descriptions: dict[str, str] = {}
    for owner in reversed(config_type.__mro__):
        if not dataclasses.is_dataclass(owner):
            continue
        descriptions.update(_docstring_lines(owner.__doc__ or '', names))
        descriptions.update(_attribute_docstrings(owner, names))
    return descriptions


def _docstring_lines(doc: str, names: set[str]) -> dict[str, str]:
    descriptions: dict[str, str] = {}
    current = None
    indent = 0
    for line in doc.splitlines():
        match = re.match(r'^(\s*)(\w+)(?:\s*\([^)]*\))?:\s+(\S.*)$', line)
        if match and match.group(2) in names:
            current, indent = match.group(2), len(match.group(1))
            descriptions[current] = match.group(3).strip()
        elif current and line.strip() and len(line) - len(line.lstrip()) > indent:
            descriptions[current] += ' ' + line.strip()
        else:
            current = None
    return descriptions


def _attribute_docstrings(owner: type, names: set[str]) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(owner))
    except (OSError, TypeError):  # no source: built in, or defined at a prompt
        return {}
    definition = ast.parse(source).body[0]
    if not isinstance(definition, ast.ClassDef):
        return {}
    descriptions = {}
    body = definition.body
    for statement, following in zip(body, body[1:]):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and statement.target.id in names and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            descriptions[statement.target.id] = ' '.join(following.value.value.split())
    return descriptions


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return _MISSING


def describe_config(config_type: type, prefix: str = '',
                    defaults: Optional[Mapping[str, Any]] = None) -> list[_Leaf]:
    """Flatten a dataclass into its parameter leaves (dotted names under `prefix`)."""
    defaults = dict(defaults or {})
    leaves = _describe(config_type, prefix, (), defaults, optional_parent=False)
    unknown = set(defaults) - {leaf.name for leaf in leaves}
    if unknown:
        raise TypeError(f'defaults for unknown parameters: {", ".join(sorted(unknown))}')
    return leaves


def _describe(config_type: type, prefix: str, path: tuple[str, ...],
              defaults: Mapping[str, Any], optional_parent: bool) -> list[_Leaf]:
    if not dataclasses.is_dataclass(config_type):
        raise TypeError(f'{config_type!r} is not a dataclass')
    hints = typing.get_type_hints(config_type)
    docs = field_descriptions(config_type)
    leaves = []
    for field in dataclasses.fields(config_type):
        if not field.init:
            continue
        name = f'{prefix}.{field.name}' if prefix else field.name
        annotation, optional = _strip_optional(hints[field.name])
        default = _field_default(field)
        if dataclasses.is_dataclass(annotation):
            nested_optional = optional or optional_parent
            leaves += _describe(annotation, name, path + (field.name,), defaults,
                                nested_optional)
            continue
        if name in defaults:
            default = defaults[name]
        description = field.metadata.get('description') or docs.get(field.name) or (
            f'{config_type.__name__}.{field.name}')
        scalar, sequence, length, choices = _leaf_type(annotation, name)
        leaves.append(_Leaf(name, path + (field.name,), scalar, sequence, length, choices,
                            optional or (optional_parent and default is _MISSING), default,
                            description))
    return leaves


def _leaf_type(annotation: Any, name: str) -> tuple[type, Optional[type], Optional[int],
                                                    Optional[tuple[str, ...]]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if not all(isinstance(c, str) for c in choices):
            raise TypeError(f'{name}: only Literal[str, ...] is supported')
        return str, None, None, tuple(choices)
    if annotation in _SCALARS:
        return annotation, None, None, None
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        length = None
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            length = len(args)
            if len(set(args)) != 1:
                raise TypeError(f'{name}: tuples must hold one element type')
        if args and args[0] in _SCALARS:
            return args[0], origin, length, None
    raise TypeError(f'{name}: unsupported parameter type {annotation!r}')


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, (list, tuple)) and hasattr(value, '__iter__'):
        return list(value) == list(default)
    return value == default


def build_config(config_type: type[T], values: Mapping[str, Any], prefix: str = '',
                 leaves: Optional[Iterable[_Leaf]] = None) -> T:
    """Build `config_type` from flat parameter values; raise ParameterError naming the field."""
    leaves = list(leaves if leaves is not None else describe_config(config_type, prefix))
    return _build(config_type, (), leaves, values, prefix)


def _build(config_type: type, path: tuple[str, ...], leaves: list[_Leaf],
           values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(config_type)
    kwargs = {}
    for field in dataclasses.fields(config_type):
        if not field.init:
            continue
        sub_path = path + (field.name,)
        annotation, optional = _strip_optional(hints[field.name])
        if dataclasses.is_dataclass(annotation):
            inner = [leaf for leaf in leaves if leaf.path[:len(sub_path)] == sub_path]
            required = [leaf for leaf in inner if leaf.default is _MISSING]
            # Set: a required field has a value, or a field differs from its default.
            given = [leaf for leaf in inner if values.get(leaf.name) is not None and (
                leaf.default is _MISSING or not _same(values[leaf.name], leaf.default))]
            if optional and not given:
                kwargs[field.name] = _field_default(field)
                continue
            missing = [leaf.name for leaf in required if values.get(leaf.name) is None]
            if missing:
                raise ParameterError(
                    f'parameter(s) {", ".join(missing)} must be set together with '
                    f'{", ".join(leaf.name for leaf in given)}')
            kwargs[field.name] = _build(annotation, sub_path, leaves, values, prefix)
            continue
        leaf = next(leaf for leaf in leaves if leaf.path == sub_path)
        kwargs[field.name] = leaf.check(values.get(leaf.name))
    try:
        return config_type(**kwargs)
    except (ValueError, TypeError) as error:
        names = [leaf.name for leaf in leaves if leaf.path[:len(path)] == path]
        named = [n for n in names if re.search(rf'\b{re.escape(n.split(".")[-1])}\b',
                                               str(error))]
        which = ', '.join(named or names)
        raise ParameterError(f'invalid {config_type.__name__} (parameters {which}): '
                             f'{error}') from error


class ConfigParameters(Generic[T]):
    """A dataclass config declared as ROS parameters and kept in sync with them.

    node: the node that owns the parameters.
    config_type: the dataclass; its __post_init__ validates.
    prefix: parameter-name prefix ('' for top-level names).
    defaults: parameter defaults that replace the dataclass's (by dotted name).
    read_only: True, or the dotted names that cannot change after startup.
    on_change: called with the new config after an accepted change.
    descriptions: parameter descriptions that replace the dataclass's (by dotted name).
    """

    def __init__(self, node: Node, config_type: type[T], *, prefix: str = '',
                 defaults: Optional[Mapping[str, Any]] = None,
                 read_only: Union[bool, Iterable[str]] = False,
                 on_change: Optional[Callable[[T], None]] = None,
                 descriptions: Optional[Mapping[str, str]] = None) -> None:
        self._node = node
        self._type = config_type
        self._prefix = prefix
        self._on_change = on_change
        self._leaves = describe_config(config_type, prefix, defaults)
        if descriptions:
            unknown = set(descriptions) - {leaf.name for leaf in self._leaves}
            if unknown:
                raise TypeError(f'descriptions of unknown parameters: {sorted(unknown)}')
            self._leaves = [dataclasses.replace(leaf, description=descriptions[leaf.name])
                            if leaf.name in descriptions else leaf for leaf in self._leaves]
        self._names = {leaf.name for leaf in self._leaves}
        frozen = self._names if read_only is True else set(read_only or ())
        self._values = {leaf.name: self._declare(leaf, leaf.name in frozen)
                        for leaf in self._leaves}
        try:
            self._config: T = build_config(config_type, self._values, prefix, self._leaves)
        except ParameterError as error:
            node.get_logger().error(f'bad parameters for {node.get_fully_qualified_name()}: '
                                    f'{error}')
            raise
        node.add_on_set_parameters_callback(self._validate_callback)
        node.add_post_set_parameters_callback(self._apply_callback)

    @property
    def config(self) -> T:
        """The current config."""
        return self._config

    @property
    def names(self) -> list[str]:
        """The declared parameter names."""
        return [leaf.name for leaf in self._leaves]

    def _declare(self, leaf: _Leaf, read_only: bool) -> Any:
        descriptor = leaf.descriptor(read_only)
        default = leaf.ros_default()
        try:
            return self._node.declare_parameter(leaf.name, default, descriptor).value
        except InvalidParameterTypeException as error:
            message = f'parameter {leaf.name!r} must be {_SCALARS[leaf.scalar]}: {error}'
            self._node.get_logger().error(
                f'bad parameters for {self._node.get_fully_qualified_name()}: {message}')
            raise ParameterError(message) from None
        except ParameterUninitializedException:
            return None

    def _candidate(self, parameters: list[Parameter]) -> tuple[dict[str, Any], bool]:
        values = dict(self._values)
        touched = False
        for parameter in parameters:
            if parameter.name in self._names:
                values[parameter.name] = parameter.value
                touched = True
        return values, touched

    def _validate_callback(self, parameters: list[Parameter]) -> SetParametersResult:
        values, touched = self._candidate(parameters)
        if not touched:
            return SetParametersResult(successful=True)
        try:
            build_config(self._type, values, self._prefix, self._leaves)
        except ParameterError as error:
            self._node.get_logger().warning(f'rejected parameter change: {error}')
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_callback(self, parameters: list[Parameter]) -> None:
        values, touched = self._candidate(parameters)
        if not touched:
            return
        self._config = build_config(self._type, values, self._prefix, self._leaves)
        self._values = values
        if self._on_change is not None:
            self._on_change(self._config)


def declare_config(node: Node, config_type: type[T], **kwargs: Any) -> T:
    """Declare `config_type` as parameters of `node` and return the config (no live updates)."""
    return ConfigParameters(node, config_type, **kwargs).config
