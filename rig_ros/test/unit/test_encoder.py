"""Tests of the nodes' VAE holder: weights from files and messages, refusals, encode/decode."""

import json

from factories import save_vae, untrained_vae
import numpy as np
import pytest
import torch

from rig_ros.core.checkpoints import save_checkpoint, serialize_state
from rig_ros.core.encoder import (
    EncoderConfig, LatentEncoder, vae_config_from_dict, vae_weights_payload, WeightsError)
from rig_ros.core.preprocessing import preprocess, PreprocessConfig
from rig_ros.core.vae import encode_images


def frame(seed: int = 0, size: int = 84) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture
def checkpoint(tmp_path):
    vae = untrained_vae(0)
    return vae, save_vae(tmp_path / 'vae.safetensors', vae, {'version': 3})


def test_checkpoint_file_or_run_directory_encodes_like_the_core(checkpoint):
    vae, path = checkpoint
    for source in (path, path.parent):
        encoder = LatentEncoder()
        assert not encoder.ready
        encoder.load_checkpoint(source)
        assert encoder.ready and encoder.version == 3 and encoder.config == vae.config
        bgr = frame(1)
        mean, logvar = encoder.encode(bgr, 'bgr8')
        expected = encode_images(vae, preprocess(bgr, PreprocessConfig(size=48), 'bgr8')[None])
        np.testing.assert_allclose(mean, expected[0][0], atol=1e-6)
        np.testing.assert_allclose(logvar, expected[1][0], atol=1e-6)
        assert mean.dtype == np.float32 and mean.shape == (4,)
        assert encoder.decode(mean).shape == (48, 48, 3)


def test_payload_replaces_weights_and_version(checkpoint):
    _, path = checkpoint
    encoder = LatentEncoder()
    encoder.load_checkpoint(path)
    before = encoder.encode(frame())[0]
    config_json, data = vae_weights_payload(untrained_vae(1))
    encoder.load_payload(data, 7, config_json)
    assert encoder.version == 7 and 'v7' in encoder.source
    assert not np.allclose(encoder.encode(frame())[0], before)
    # Nested {'vae': state_dict} as in checkpoints, and no config_json (the blob's or current).
    nested = serialize_state({'vae': untrained_vae(2).state_dict()})
    encoder.load_payload(nested, 8)
    expected = encode_images(untrained_vae(2),
                             preprocess(frame(), PreprocessConfig(size=48))[None])
    np.testing.assert_allclose(encoder.encode(frame())[0], expected[0][0], atol=1e-6)


def test_first_payload_defines_the_vae():
    encoder = LatentEncoder()
    with pytest.raises(WeightsError, match='without a config'):
        encoder.load_payload(serialize_state(untrained_vae(0).state_dict()), 1)
    config_json, data = vae_weights_payload(untrained_vae(0, image_size=84, latent_dim=6))
    encoder.load_payload(data, 1, config_json)
    assert encoder.config.image_size == 84 and encoder.encode(frame())[0].shape == (6,)


def test_bad_weights_are_refused_and_the_old_ones_kept(checkpoint, tmp_path):
    _, path = checkpoint
    encoder = LatentEncoder()
    encoder.load_checkpoint(path)
    before = encoder.encode(frame())[0]
    config_json, data = vae_weights_payload(untrained_vae(1))
    nan_vae = untrained_vae(1)
    with torch.no_grad():
        nan_vae.mean_head.weight[0, 0] = float('nan')
    other_json, other_data = vae_weights_payload(untrained_vae(1, latent_dim=5))
    wrong_state = serialize_state(untrained_vae(1, image_size=84).state_dict())
    cases = {
        'corrupt': (data[:100], config_json),
        'not JSON': (data, '{oops'),
        'with 5 latents': (other_data, other_json),
        'does not fit': (wrong_state, config_json),
        'NaN': (vae_weights_payload(nan_vae)[1], config_json),
        'invalid VAE config': (data, json.dumps({'image_size': 50})),
    }
    for problem, (blob, config) in cases.items():
        with pytest.raises(WeightsError, match=problem):
            encoder.load_payload(blob, 9, config)
    save_checkpoint(tmp_path / 'other.safetensors', {'td3': {'w': torch.zeros(1)}})
    for source, problem in ((tmp_path / 'missing.safetensors', 'cannot read'),
                            (tmp_path / 'other.safetensors', "no 'vae' module")):
        with pytest.raises(WeightsError, match=problem):
            encoder.load_checkpoint(source)
    assert encoder.version == 3
    np.testing.assert_array_equal(encoder.encode(frame())[0], before)


def test_not_ready_and_bad_images():
    encoder = LatentEncoder()
    with pytest.raises(RuntimeError, match='no VAE weights'):
        encoder.encode(frame())
    config_json, data = vae_weights_payload(untrained_vae(0))
    encoder.load_payload(data, 1, config_json)
    with pytest.raises(ValueError, match='unsupported image encoding'):
        encoder.encode(frame(), 'yuv422')
    with pytest.raises(ValueError, match='channel'):
        encoder.encode(frame()[:, :, :2])
    with pytest.raises(ValueError, match='one latent'):
        encoder.decode(np.zeros((1, 4)))


def test_configs():
    assert vae_config_from_dict({'vae': {'image_size': 48}, 'seed': 1}).image_size == 48
    assert vae_config_from_dict({'latent_dim': 3, 'unknown': 1}).latent_dim == 3
    with pytest.raises(ValueError, match='torch_threads'):
        EncoderConfig(torch_threads=0)
