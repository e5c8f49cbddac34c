"""Tests of the RIG convolutional VAE, its numpy helpers and its trainer."""

import math

import numpy as np
import pytest
import torch

from rig_ros.core.vae import (
    ConvVAE, decode_latents, encode_images, evaluating, images_to_tensor, VAEConfig, VAETrainer)


def moving_square(count: int, size: int) -> np.ndarray:
    """Frames of an orange square travelling along a curve on black: a tiny RIG scene."""
    images = np.zeros((count, size, size, 3), np.uint8)
    side = size // 6
    for index in range(count):
        phase = index / count
        row = int(phase * (size - side))
        col = int((0.5 + 0.5 * math.sin(2 * math.pi * phase)) * (size - side))
        images[index, row:row + side, col:col + side] = (255, 64, 0)
    return images


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize('size', [84, 48])
def test_shapes(size):
    vae = ConvVAE(VAEConfig(image_size=size, latent_dim=6))
    x = torch.rand(5, 3, size, size)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (5, 6)
    reconstruction = vae.decode(vae.reparameterize(mean, logvar))
    assert reconstruction.shape == (5, 3, size, size)
    assert 0.0 <= reconstruction.min() and reconstruction.max() <= 1.0
    output, *_ = vae(x)
    assert output.shape == x.shape


def test_wrong_input_size_is_a_clear_error():
    vae = ConvVAE(VAEConfig(image_size=48))
    with pytest.raises(ValueError, match=r'\[B, 3, 48, 48\]'):
        vae.encode(torch.rand(2, 3, 84, 84))


def test_logvar_floor_is_respected():
    config = VAEConfig(image_size=48)
    vae = ConvVAE(config)
    with torch.no_grad():
        vae.logvar_head.weight.zero_()
        vae.logvar_head.bias.fill_(-1e4)  # drive the raw head far below the floor
    _, logvar = vae.encode(torch.rand(4, 3, 48, 48))
    assert (logvar >= torch.tensor(config.logvar_floor)).all()  # compared in float32
    assert logvar.max().item() == pytest.approx(math.log(1e-3), abs=1e-6)


def test_posterior_starts_near_unit_variance():
    _, logvar = ConvVAE(VAEConfig(image_size=48)).encode(torch.rand(8, 3, 48, 48))
    assert logvar.abs().mean().item() < 0.5


def test_prior_samples_are_standard_normal():
    vae = ConvVAE(VAEConfig(image_size=48, latent_dim=4))
    z = vae.sample_prior(20000, generator=torch.Generator().manual_seed(1))
    assert z.shape == (20000, 4)
    assert z.mean(0).abs().max().item() < 0.05
    assert (z.std(0) - 1.0).abs().max().item() < 0.05


def test_beta_warms_up_linearly():
    config = VAEConfig(image_size=48, beta=2.0, beta_warmup_steps=10)
    assert [config.beta_at(step) for step in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    assert VAEConfig(beta=3.0).beta_at(0) == 3.0
    trainer = VAETrainer(ConvVAE(config))
    betas = [trainer.train_step(moving_square(4, 48))['beta'] for _ in range(3)]
    assert betas == [0.0, 0.2, 0.4]


def test_default_beta_is_rig_release_value():
    assert VAEConfig().beta == 10 / 128


@pytest.mark.parametrize('kwargs', [
    {'image_size': 64}, {'latent_dim': 0}, {'beta': -1.0}, {'beta': float('nan')},
    {'beta_warmup_steps': -1}, {'likelihood': 'laplace'}, {'learning_rate': 0.0},
    {'batch_size': 0}, {'logvar_floor': float('-inf')}, {'latent_dim': 2.5},
])
def test_invalid_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        VAEConfig(**kwargs)


@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_loss_parts(likelihood):
    vae = ConvVAE(VAEConfig(image_size=48, likelihood=likelihood, beta=0.5))
    loss, metrics = vae.loss(images_to_tensor(moving_square(6, 48)))
    assert set(metrics) == {'loss', 'recon', 'kl', 'beta'}
    assert loss.item() == pytest.approx(metrics['loss'])
    assert metrics['kl'] >= 0 and metrics['recon'] > 0
    # Parts and total come from the same sample of z, so they must add up.
    assert metrics['loss'] == pytest.approx(metrics['recon'] + 0.5 * metrics['kl'], rel=1e-5)


def test_images_to_tensor():
    images = np.zeros((2, 4, 5, 3), np.uint8)
    images[1, 2, 3] = (255, 0, 51)
    x = images_to_tensor(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    assert x[1, :, 2, 3].tolist() == pytest.approx([1.0, 0.0, 0.2])
    with pytest.raises(ValueError, match='uint8'):
        images_to_tensor(images.astype(np.float32))
    with pytest.raises(ValueError, match='uint8'):
        images_to_tensor(images[0])


def test_numpy_helpers_use_eval_mode_and_batch_independent_statistics():
    vae = ConvVAE(VAEConfig(image_size=48, latent_dim=3))
    VAETrainer(vae).train_step(moving_square(16, 48))  # give batch-norm running statistics
    images = moving_square(10, 48)
    vae.train()
    mean, logvar = encode_images(vae, images, batch_size=4)
    assert vae.training  # mode restored
    assert mean.shape == logvar.shape == (10, 3) and mean.dtype == np.float32
    alone, _ = encode_images(vae, images[3:4])
    np.testing.assert_allclose(alone[0], mean[3], rtol=1e-5, atol=1e-6)
    decoded = decode_latents(vae, mean, batch_size=4)
    assert decoded.shape == (10, 48, 48, 3) and decoded.dtype == np.uint8
    assert encode_images(vae, images[:0])[0].shape == (0, 3)
    with pytest.raises(ValueError, match='latents'):
        decode_latents(vae, np.zeros((2, 5), np.float32))


def test_loss_falls_on_a_moving_square():
    images = moving_square(64, 48)
    trainer = VAETrainer(ConvVAE(VAEConfig(image_size=48, batch_size=32)))
    history = trainer.fit(images, 250, progress=False, holdout_fraction=0.125, eval_every=100)
    initial = history[0]['loss']
    final = np.mean([m['loss'] for m in history[-20:]])
    assert final < 0.15 * initial, (initial, final)
    assert trainer.step == 250
    held_out = [m['holdout_recon'] for m in history if 'holdout_recon' in m]
    assert len(held_out) == 3  # steps 100, 200 and the last
    assert held_out[-1] < 0.2 * history[0]['recon']


def test_trainer_rejects_a_config_for_another_model():
    vae = ConvVAE(VAEConfig(image_size=48))
    VAETrainer(vae, VAEConfig(image_size=48, learning_rate=1e-4, batch_size=8))  # fine
    with pytest.raises(ValueError, match='latent_dim'):
        VAETrainer(vae, VAEConfig(image_size=48, latent_dim=8))


def test_trainer_state_dict_round_trip():
    config = VAEConfig(image_size=48, batch_size=8)
    trainer = VAETrainer(ConvVAE(config))
    trainer.fit(moving_square(16, 48), 3, progress=False, holdout_fraction=0.0)
    copy = VAETrainer(ConvVAE(config))
    copy.load_state_dict(trainer.state_dict())
    assert copy.step == 3
    for name, tensor in trainer.vae.state_dict().items():
        torch.testing.assert_close(copy.vae.state_dict()[name], tensor, rtol=0, atol=0)


def test_evaluating_restores_the_mode_and_leaves_an_evaluating_module_alone(monkeypatch):
    vae = ConvVAE(VAEConfig(image_size=48, latent_dim=4))
    vae.train()
    with evaluating(vae):
        assert not any(part.training for part in vae.modules())
    assert all(part.training for part in vae.modules())
    vae.eval()
    switched = []
    monkeypatch.setattr(torch.nn.Module, 'train',
                        lambda self, mode=True: switched.append(mode) or self)
    with evaluating(vae):
        pass
    assert switched == [] and not vae.training  # already evaluating: no switch at all
