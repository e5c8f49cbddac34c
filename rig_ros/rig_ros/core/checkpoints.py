"""Checkpoints and weight messages as safetensors: tensors as tensors, everything else as JSON.

Nothing is ever pickled or unpickled, so loading a file or a message cannot run code. One
blob holds the tensors under path-like keys ('module/<name>/<key>',
'optim/<name>/state/<idx>/<key>', 'state/<key>') and, in the safetensors metadata (str -> str),
a format tag and version, the JSON config and metadata, and a JSON layout that puts the tensors
and the plain values (step counters, optimizer param_groups) back into nested dicts.
"""

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import safetensors.torch
import torch

from rig_ros.core.files import atomic_write_bytes

FORMAT = 'rig_ros'
FORMAT_VERSION = 1

# Layout markers: JSON has no tensors, tuples or non-string keys.
_TENSOR, _TUPLE, _DICT = '__tensor__', '__tuple__', '__dict__'
_MARKERS = {_TENSOR, _TUPLE, _DICT}


class CheckpointError(ValueError):
    """A checkpoint file or state blob is truncated, corrupt, or not what was expected."""


@dataclass
class Checkpoint:
    """Contents of a checkpoint file, ready for `load_state_dict` calls."""

    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def _pack(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Return a JSON-able stand-in for `value`, moving its tensors into `tensors`."""
    if isinstance(value, torch.Tensor):
        if key in tensors:
            raise TypeError(f'two entries map to the tensor key {key!r}')
        # A private contiguous CPU copy: safetensors refuses shared or strided storage.
        tensors[key] = value.detach().cpu().clone(memory_format=torch.contiguous_format)
        return {_TENSOR: key}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not _MARKERS & set(value):
            return {k: _pack(v, f'{key}/{k}', tensors) for k, v in value.items()}
        if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in value):
            raise TypeError(f'{key}: only str and int dict keys can be stored')
        return {_DICT: [[k, _pack(v, f'{key}/{k}', tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_pack(v, f'{key}/{i}', tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_pack(v, f'{key}/{i}', tensors) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f'{key}: cannot store a {type(value).__name__}; '
                    'use tensors, numbers, strings, lists, tuples and dicts')


def _unpack(node: Any, tensors: dict[str, torch.Tensor], used: set[str]) -> Any:
    """Invert `_pack`, recording which tensors were referenced."""
    if isinstance(node, list):
        return [_unpack(v, tensors, used) for v in node]
    if not isinstance(node, dict):
        return node
    if _TENSOR in node:
        key = node[_TENSOR]
        if key not in tensors:
            raise CheckpointError(f'the layout refers to a missing tensor {key!r}')
        used.add(key)
        return tensors[key]
    if _TUPLE in node:
        return tuple(_unpack(v, tensors, used) for v in node[_TUPLE])
    if _DICT in node:
        return {k: _unpack(v, tensors, used) for k, v in node[_DICT]}
    return {k: _unpack(v, tensors, used) for k, v in node.items()}


def _json_default(value: Any) -> Any:
    # numpy numbers and arrays often end up in metrics; store them as plain JSON.
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f'{type(value).__name__} is not JSON-serialisable')


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as error:
        raise TypeError(f'{what} must be JSON-serialisable: {error}') from None


def _encode(kind: str, layout: dict[str, Any], tensors: dict[str, torch.Tensor],
            config: Optional[Mapping[str, Any]],
            metadata: Optional[Mapping[str, Any]]) -> bytes:
    header = {
        'format': FORMAT,
        'format_version': str(FORMAT_VERSION),
        'kind': kind,
        'layout': _to_json(layout, 'layout'),
        'config': _to_json(dict(config or {}), 'config'),
        'metadata': _to_json(dict(metadata or {}), 'metadata'),
    }
    return safetensors.torch.save(tensors, metadata=header)


def _decode(data: bytes, kind: str, source: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Validate a blob and return (layout with tensors filled in, config, metadata)."""
    if len(data) < 8:
        raise CheckpointError(f'{source} is truncated ({len(data)} bytes)')
    header_size = int.from_bytes(data[:8], 'little')
    if header_size > len(data) - 8:
        raise CheckpointError(f'{source} is truncated or not safetensors: it announces a '
                              f'{header_size}-byte header but holds {len(data)} bytes')
    try:
        header = json.loads(data[8:8 + header_size])
    except ValueError:  # includes UnicodeDecodeError
        raise CheckpointError(f'{source} has a corrupt safetensors header') from None
    meta = header.get('__metadata__') if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise CheckpointError(f'{source} is not a {FORMAT} checkpoint')
    if meta.get('format_version') != str(FORMAT_VERSION):
        raise CheckpointError(f'{source} has format version {meta.get("format_version")!r}; '
                              f'this code reads version {FORMAT_VERSION}')
    if meta.get('kind') != kind:
        raise CheckpointError(f'{source} holds a {meta.get("kind")!r}, expected a {kind!r}')
    try:
        tensors = safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own error types from Rust
        raise CheckpointError(f'{source} has corrupt tensor data: {error}') from None
    try:
        layout = json.loads(meta['layout'])
        config = json.loads(meta['config'])
        metadata = json.loads(meta['metadata'])
        used: set[str] = set()
        restored = _unpack(layout, tensors, used)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f'{source} has a malformed layout: {error!r}') from None
    if set(tensors) != used:
        raise CheckpointError(f'{source} holds tensors its layout does not mention: '
                              f'{sorted(set(tensors) - used)[:5]}')
    if not isinstance(config, dict) or not isinstance(metadata, dict):
        raise CheckpointError(f'{source}: config and metadata must be JSON objects')
    return restored, config, metadata


def _check_names(kind: str, entries: Mapping[str, Any]) -> None:
    for name in entries:
        if not isinstance(name, str) or not name or '/' in name:
            raise ValueError(f'{kind} names must be non-empty strings without "/", got {name!r}')


def save_checkpoint(path: Union[str, os.PathLike],
                    modules: Mapping[str, Mapping[str, Any]],
                    optimizers: Optional[Mapping[str, Mapping[str, Any]]] = None,
                    config: Optional[Mapping[str, Any]] = None,
                    metadata: Optional[Mapping[str, Any]] = None) -> None:
    """Write module and optimizer state dicts, a JSON config and JSON metadata to one file.

    modules: name -> `module.state_dict()`; optimizers: name -> `optimizer.state_dict()`.
    Plain values inside them (e.g. a step counter) are kept in the JSON layout.
    """
    optimizers = optimizers or {}
    _check_names('module', modules)
    _check_names('optimizer', optimizers)
    tensors: dict[str, torch.Tensor] = {}
    layout = {
        'modules': {name: _pack(state, f'module/{name}', tensors)
                    for name, state in modules.items()},
        'optimizers': {name: _pack(state, f'optim/{name}', tensors)
                       for name, state in optimizers.items()},
    }
    # A synced temporary file and a rename: a crash leaves the old file or the new, never half.
    atomic_write_bytes(path, _encode('checkpoint', layout, tensors, config, metadata))


def load_checkpoint(path: Union[str, os.PathLike]) -> Checkpoint:
    """Read a file written by `save_checkpoint`; raises CheckpointError if it is unusable."""
    data = Path(path).read_bytes()
    restored, config, metadata = _decode(data, 'checkpoint', f'checkpoint {str(path)!r}')
    if not isinstance(restored, dict) or set(restored) != {'modules', 'optimizers'}:
        raise CheckpointError(f'checkpoint {str(path)!r} has a malformed layout')
    return Checkpoint(modules=restored['modules'], optimizers=restored['optimizers'],
                      config=config, metadata=metadata)


def serialize_state(tensors: Mapping[str, Any], config: Optional[Mapping[str, Any]] = None,
                    metadata: Optional[Mapping[str, Any]] = None) -> bytes:
    """Encode a (possibly nested) state dict as safetensors bytes, e.g. for a ROS message."""
    stored: dict[str, torch.Tensor] = {}
    layout = _pack(dict(tensors), 'state', stored)
    return _encode('state', layout, stored, config, metadata)


def deserialize_state(
        data: Union[bytes, bytearray, memoryview]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Decode `serialize_state` output into (state, config, metadata).

    `data` may be any byte buffer, e.g. the `array.array` of a ROS `uint8[]` field. Raises
    CheckpointError if it is truncated, corrupt or not a state blob.
    """
    restored, config, metadata = _decode(bytes(data), 'state', 'state blob')
    if not isinstance(restored, dict):
        raise CheckpointError('state blob has a malformed layout')
    return restored, config, metadata
