"""Tests of the VAE's training-image augmentation (light, contrast, shifts) and its config."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from rig_ros.core.encoder import vae_config_from_dict
from rig_ros.core.pipeline import PipelineConfig
from rig_ros.core.vae import (
    augment_images, AugmentationConfig, ConvVAE, images_to_tensor, VAEConfig, VAETrainer)

ON = AugmentationConfig(enabled=True)


def generator(seed: int = 0) -> torch.Generator:
    """Return a seeded CPU generator."""
    return torch.Generator().manual_seed(seed)


def marker_images(count: int, size: int = 24) -> torch.Tensor:
    """Dark grey images with one white pixel in the middle."""
    x = torch.full((count, 3, size, size), 0.2)
    x[:, :, size // 2, size // 2] = 1.0
    return x


def test_shape_dtype_and_range():
    x = torch.rand(7, 3, 48, 48)
    y = augment_images(x, ON, generator())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.0 <= y.min().item() and y.max().item() <= 1.0
    assert not torch.equal(x, y)
    assert augment_images(x[:0], ON, generator()).shape == (0, 3, 48, 48)


def test_deterministic_under_a_seed():
    x = torch.rand(5, 3, 48, 48)
    torch.testing.assert_close(augment_images(x, ON, generator(3)),
                               augment_images(x, ON, generator(3)), rtol=0, atol=0)
    assert not torch.equal(augment_images(x, ON, generator(3)),
                           augment_images(x, ON, generator(4)))


def test_identity_when_off_or_without_change():
    x = torch.rand(4, 3, 48, 48)
    assert augment_images(x, AugmentationConfig(enabled=False), generator()) is x
    neutral = AugmentationConfig(enabled=True, shift_px=0, brightness=(1.0, 1.0),
                                 contrast=(1.0, 1.0))
    torch.testing.assert_close(augment_images(x, neutral, generator()), x)


def test_shifts_stay_within_bounds_and_reach_them():
    config = AugmentationConfig(enabled=True, shift_px=3, brightness=(1.0, 1.0),
                                contrast=(1.0, 1.0))
    x = marker_images(400)
    y = augment_images(x, config, generator())
    centre = x.shape[-1] // 2
    offsets = set()
    for image in y[:, 0]:
        rows, cols = torch.nonzero(image > 0.9, as_tuple=True)
        assert len(rows) == 1  # the marker moved, nothing else became white
        offsets.add((int(rows[0]) - centre, int(cols[0]) - centre))
    assert offsets == {(r, c) for r in range(-3, 4) for c in range(-3, 4)}


def test_shift_fills_borders_with_edge_pixels():
    config = AugmentationConfig(enabled=True, shift_px=2, brightness=(1.0, 1.0),
                                contrast=(1.0, 1.0))
    x = torch.full((60, 3, 8, 8), 0.5)
    x[:, :, :, -1] = 1.0  # a white right column
    y = augment_images(x, config, generator())
    assert set(y.unique().tolist()) == {0.5, 1.0}  # no zero padding anywhere
    white_columns = (y[:, 0, 0, :] == 1.0).sum(1)
    # Moved left, the white edge is repeated (up to 3 columns); moved right, it leaves.
    assert set(white_columns.tolist()) == {0, 1, 2, 3}


def test_brightness_is_one_factor_per_image_within_the_range():
    config = AugmentationConfig(enabled=True, shift_px=0, brightness=(0.7, 1.3),
                                contrast=(1.0, 1.0))
    y = augment_images(torch.full((300, 3, 6, 6), 0.5), config, generator())
    per_image = y.flatten(1)
    assert torch.allclose(per_image.min(1).values, per_image.max(1).values)
    values = per_image[:, 0]
    assert values.min().item() >= 0.35 - 1e-6 and values.max().item() <= 0.65 + 1e-6
    assert values.min().item() < 0.38 and values.max().item() > 0.62


def test_contrast_keeps_the_mean_and_scales_deviations():
    config = AugmentationConfig(enabled=True, shift_px=0, brightness=(1.0, 1.0),
                                contrast=(0.5, 0.5))
    x = torch.rand(3, 3, 8, 8) * 0.5 + 0.25
    y = augment_images(x, config, generator())
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(y, (x - mean) * 0.5 + mean)


@pytest.mark.parametrize('kwargs', [
    {'shift_px': -1}, {'shift_px': 1.5}, {'brightness': (1.3, 0.7)}, {'brightness': (0.0, 1.0)},
    {'contrast': (0.8,)}, {'contrast': (0.8, float('nan'))}, {'target': 'noisy'},
    {'consistency_weight': -1.0}, {'enabled': 1},
])
def test_invalid_augmentation_is_rejected(kwargs):
    with pytest.raises(ValueError):
        AugmentationConfig(**kwargs)


def test_config_survives_json_and_checkpoint_config_readers():
    config = VAEConfig(image_size=48, augmentation=AugmentationConfig(
        enabled=True, shift_px=2, brightness=(0.6, 1.4), consistency_weight=1.0))
    values = json.loads(json.dumps(dataclasses.asdict(config)))
    assert VAEConfig(**values) == config
    assert vae_config_from_dict(values) == config
    pipeline = PipelineConfig(vae=config)
    assert PipelineConfig.from_dict(json.loads(json.dumps(pipeline.to_dict()))) == pipeline
    with pytest.raises(ValueError, match='unknown augmentation fields'):
        VAEConfig(augmentation={'enabled': True, 'blur': 1})
    with pytest.raises(ValueError, match='AugmentationConfig'):
        VAEConfig(augmentation=True)


def square_images(count: int, size: int = 48) -> np.ndarray:
    """Grey frames with a red square at a different place in each."""
    images = np.full((count, size, size, 3), 90, np.uint8)
    for index in range(count):
        row, col = (7 * index) % (size - 8), (11 * index) % (size - 8)
        images[index, row:row + 8, col:col + 8] = (230, 30, 30)
    return images


def trained_weights(augmentation: AugmentationConfig, seed: int) -> dict:
    """Weights after three augmented train steps from the same initial weights."""
    torch.manual_seed(0)
    config = VAEConfig(image_size=48, batch_size=8, augmentation=augmentation)
    trainer = VAETrainer(ConvVAE(config), seed=seed)
    for _ in range(3):
        metrics = trainer.train_step(square_images(8))
    assert np.isfinite(metrics['loss'])
    return trainer.vae.state_dict()


def test_trainer_augments_deterministically_under_its_seed():
    first, again = trained_weights(ON, seed=5), trained_weights(ON, seed=5)
    other = trained_weights(ON, seed=6)
    for name, tensor in first.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=0)
    assert any(not torch.equal(other[name], tensor) for name, tensor in first.items()
               if tensor.is_floating_point())


def test_resumed_training_draws_what_uninterrupted_training_draws():
    config = VAEConfig(image_size=48, batch_size=8, augmentation=ON)
    batches = [square_images(8)[np.random.default_rng(i).permutation(8)] for i in range(4)]
    torch.manual_seed(0)
    whole = VAETrainer(ConvVAE(config), seed=3)
    for batch in batches[:2]:
        whole.train_step(batch)
    torch.manual_seed(1)  # the latent samples' generator, as a resumed process would seed it
    for batch in batches[2:]:
        whole.train_step(batch)
    torch.manual_seed(0)
    first = VAETrainer(ConvVAE(config), seed=3)
    for batch in batches[:2]:
        first.train_step(batch)
    resumed = VAETrainer(ConvVAE(config), seed=3)
    resumed.load_state_dict(first.state_dict())
    torch.manual_seed(1)
    for batch in batches[2:]:
        resumed.train_step(batch)
    for name, tensor in whole.vae.state_dict().items():
        torch.testing.assert_close(resumed.vae.state_dict()[name], tensor, rtol=0, atol=0)


def test_clean_target_is_reconstructed_and_consistency_is_reported():
    torch.manual_seed(0)
    images = square_images(8)
    config = VAEConfig(image_size=48, batch_size=8, augmentation=dataclasses.replace(
        ON, consistency_weight=2.0))
    trainer = VAETrainer(ConvVAE(config))
    metrics = trainer.train_step(images)
    assert metrics['consistency'] >= 0.0
    # The parts add up: the reconstruction is of the clean images (checked by the loss parts).
    assert metrics['loss'] == pytest.approx(
        metrics['recon'] + metrics['beta'] * metrics['kl'] + 2.0 * metrics['consistency'],
        rel=1e-5)
    vae = ConvVAE(VAEConfig(image_size=48))
    x = images_to_tensor(images)
    _, parts = vae.loss(x, target=torch.zeros_like(x))
    _, same = vae.loss(x)
    assert parts['recon'] != pytest.approx(same['recon'])


def test_trainer_accepts_an_augmentation_the_model_config_lacks():
    off = AugmentationConfig(enabled=False)
    vae = ConvVAE(VAEConfig(image_size=48, augmentation=off))
    trainer = VAETrainer(vae, VAEConfig(image_size=48, augmentation=ON))
    assert trainer.config.augmentation.enabled and not vae.config.augmentation.enabled


def test_on_by_default_and_off_for_runs_saved_before_it():
    assert VAEConfig().augmentation == ON
    values = json.loads(json.dumps(PipelineConfig().to_dict()))
    assert PipelineConfig.from_dict(values).vae.augmentation.enabled
    del values['vae']['augmentation']
    assert not PipelineConfig.from_dict(values).vae.augmentation.enabled
