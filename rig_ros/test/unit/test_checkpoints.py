"""Tests of safetensors checkpoints and state blobs: exact round trips, no pickle, clear errors."""

import array
import dataclasses
import json
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from rig_ros.core.checkpoints import (
    CheckpointError, deserialize_state, load_checkpoint, save_checkpoint, serialize_state)
from rig_ros.core.vae import ConvVAE, VAEConfig, VAETrainer

SAFETENSORS_DTYPES = {'F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'}


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _trained(steps: int = 3) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(steps):
        loss = model(torch.randn(16, 3)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def _assert_same(restored, original):
    """Recursive exact equality, including tensor dtypes and Python container types."""
    assert type(restored) is type(original)
    if isinstance(original, torch.Tensor):
        assert restored.dtype == original.dtype and restored.shape == original.shape
        assert torch.equal(restored, original.cpu())
    elif isinstance(original, dict):
        assert list(restored) == list(original)
        for key in original:
            _assert_same(restored[key], original[key])
    elif isinstance(original, (list, tuple)):
        assert len(restored) == len(original)
        for a, b in zip(restored, original):
            _assert_same(a, b)
    else:
        assert restored == original


def _header(path) -> dict:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], 'little')
    return json.loads(data[8:8 + size])


@pytest.fixture
def saved(tmp_path):
    model, optimizer = _trained()
    path = tmp_path / 'run' / 'agent.safetensors'
    save_checkpoint(path, {'actor': model.state_dict()}, {'actor': optimizer.state_dict()},
                    config={'lr': 1e-2, 'hidden': [8]}, metadata={'step': 3, 'version': '0.1'})
    return path, model, optimizer


def test_round_trip_restores_modules_optimizer_and_counters(saved):
    path, model, optimizer = saved
    checkpoint = load_checkpoint(path)
    _assert_same(checkpoint.modules['actor'], dict(model.state_dict()))
    _assert_same(checkpoint.optimizers['actor'], optimizer.state_dict())
    assert checkpoint.config == {'lr': 1e-2, 'hidden': [8]}
    assert checkpoint.metadata == {'step': 3, 'version': '0.1'}

    fresh = _model()
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.5)
    fresh.load_state_dict(checkpoint.modules['actor'])
    fresh_optimizer.load_state_dict(checkpoint.optimizers['actor'])
    _assert_same(fresh_optimizer.state_dict(), optimizer.state_dict())


def test_layout_of_the_file(saved):
    path, _, _ = saved
    header = _header(path)
    meta = header.pop('__metadata__')
    assert meta['format'] == 'rig_ros' and meta['format_version'] == '1'
    assert all(isinstance(value, str) for value in meta.values())
    assert 'optim/actor/state/0/exp_avg_sq' in header
    assert 'optim/actor/state/3/step' in header
    assert 'module/actor/1.num_batches_tracked' in header
    # param_groups are JSON, with the tuple of betas kept a tuple.
    assert '"betas": {"__tuple__": [0.8, 0.95]}' in meta['layout']


def test_loading_never_unpickles(saved, monkeypatch):
    path, _, _ = saved

    def refuse(*args, **kwargs):
        raise AssertionError('pickle used')

    for name in ('load', 'loads', 'Unpickler'):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, 'load', refuse)
    load_checkpoint(path)
    # A plain safetensors file: 8-byte size, JSON header, raw tensor bytes, nothing else.
    header = _header(path)
    header.pop('__metadata__')
    assert {entry['dtype'] for entry in header.values()} <= SAFETENSORS_DTYPES
    header_size = int.from_bytes(path.read_bytes()[:8], 'little')
    data_size = max(entry['data_offsets'][1] for entry in header.values())
    assert path.stat().st_size == 8 + header_size + data_size


def test_continuing_training_after_load_matches_uninterrupted(tmp_path):
    config = VAEConfig(image_size=48, batch_size=8, beta_warmup_steps=10)
    batches = np.random.default_rng(0).integers(0, 256, (6, 8, 48, 48, 3), dtype=np.uint8)
    torch.manual_seed(0)
    trainer = VAETrainer(ConvVAE(config))
    for batch in batches[:3]:
        trainer.train_step(batch)
    state = trainer.state_dict()
    save_checkpoint(tmp_path / 'vae.safetensors', {'vae': state['vae']},
                    {'vae': state['optimizer']}, dataclasses.asdict(config),
                    {'step': trainer.step})

    torch.manual_seed(1)
    uninterrupted = [trainer.train_step(batch) for batch in batches[3:]]

    checkpoint = load_checkpoint(tmp_path / 'vae.safetensors')
    resumed = VAETrainer(ConvVAE(VAEConfig(**checkpoint.config)))
    resumed.load_state_dict({'vae': checkpoint.modules['vae'],
                             'optimizer': checkpoint.optimizers['vae'],
                             'step': checkpoint.metadata['step']})
    torch.manual_seed(1)
    after_load = [resumed.train_step(batch) for batch in batches[3:]]

    assert after_load == uninterrupted  # losses and beta (the step counter) alike
    _assert_same(dict(resumed.vae.state_dict()), dict(trainer.vae.state_dict()))


def test_plain_values_in_state_dicts_come_back_as_python_values(tmp_path):
    state = {'weight': torch.arange(4.0), 'updates': 12, 'scale': 0.5, 'name': 'td3',
             'shape': (2, 2), 'flags': [True, None], 'counts': np.int64(3)}
    save_checkpoint(tmp_path / 'x.safetensors', {'agent': state})
    restored = load_checkpoint(tmp_path / 'x.safetensors').modules['agent']
    expected = dict(state, counts=3)
    _assert_same(restored, expected)


def test_overwrite_is_atomic_and_leaves_no_temporary_files(saved):
    path, model, _ = saved
    save_checkpoint(path, {'actor': model.state_dict()}, metadata={'step': 4})
    with pytest.raises(TypeError, match='cannot store'):
        save_checkpoint(path, {'actor': {'bad': object()}})
    assert load_checkpoint(path).metadata == {'step': 4}  # the failed save changed nothing
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize('damage', [
    lambda data: b'',
    lambda data: data[:5],
    lambda data: data[:-10],
    lambda data: data[:8] + b'#' + data[9:],
    lambda data: bytes(len(data)),
    lambda data: b'\xff' * 8 + data[8:],
    lambda data: np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes(),
])
def test_damaged_files_raise_checkpoint_error(saved, damage):
    path, _, _ = saved
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_foreign_and_mismatched_files_raise_checkpoint_error(tmp_path):
    foreign = tmp_path / 'foreign.safetensors'
    safetensors.torch.save_file({'w': torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match='not a rig_ros checkpoint'):
        load_checkpoint(foreign)

    blob = tmp_path / 'blob.safetensors'
    blob.write_bytes(serialize_state({'w': torch.ones(2)}))
    with pytest.raises(CheckpointError, match="expected a 'checkpoint'"):
        load_checkpoint(blob)

    # Valid metadata, but a tensor the layout needs is missing.
    path = tmp_path / 'a.safetensors'
    save_checkpoint(path, {'m': {'w': torch.ones(2), 'b': torch.zeros(1)}})
    header = _header(path)
    tensors = safetensors.torch.load(path.read_bytes())
    del tensors['module/m/b']
    path.write_bytes(safetensors.torch.save(tensors, metadata=header['__metadata__']))
    with pytest.raises(CheckpointError, match='missing tensor'):
        load_checkpoint(path)

    version = dict(header['__metadata__'], format_version='99')
    path.write_bytes(safetensors.torch.save(tensors, metadata=version))
    with pytest.raises(CheckpointError, match='version'):
        load_checkpoint(path)


def test_serialized_state_round_trip_from_ros_style_buffers():
    state = {'actor': dict(_model().state_dict()), 'version': 7}
    data = serialize_state(state, {'latent_dim': 4}, {'step': 10})
    assert isinstance(data, bytes)
    for buffer in (data, bytearray(data), memoryview(data), array.array('B', data)):
        restored, config, metadata = deserialize_state(buffer)
        _assert_same(restored, state)
        assert config == {'latent_dim': 4} and metadata == {'step': 10}


def test_bad_state_blobs_raise_checkpoint_error(saved):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match="expected a 'state'"):
        deserialize_state(path.read_bytes())
    data = serialize_state({'w': torch.ones(3)})
    with pytest.raises(CheckpointError):
        deserialize_state(data[:-4])


def test_names_and_values_are_checked_on_save(tmp_path):
    with pytest.raises(ValueError, match='names'):
        save_checkpoint(tmp_path / 'x', {'a/b': {}})
    with pytest.raises(TypeError, match='JSON'):
        save_checkpoint(tmp_path / 'x', {}, config={'f': object()})
