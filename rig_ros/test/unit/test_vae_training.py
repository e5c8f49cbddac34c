"""VAEPretraining: resumes from its checkpoint after a kill, writes the VAE the nodes load."""

import dataclasses

import numpy as np
import pytest
import torch

from rig_ros.core import checkpoints, vae_training
from rig_ros.core.encoder import LatentEncoder, VAE_CHECKPOINT_FILE
from rig_ros.core.learner import load_latent_variance, load_vae_weights
from rig_ros.core.skew_fit import SkewFitConfig
from rig_ros.core.vae import AugmentationConfig, VAEConfig
from rig_ros.core.vae_training import (
    PRETRAIN_CHECKPOINT_FILE, read_vae_checkpoint, vae_input, VAEPretraining,
    VAEPretrainingConfig)

VAE = VAEConfig(image_size=48, latent_dim=4, batch_size=8)
CONFIG = VAEPretrainingConfig(vae=VAE, checkpoint_every=3, holdout_fraction=0.2, seed=1)


def frames(count: int = 20, size: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def weights(pretraining: VAEPretraining) -> list[torch.Tensor]:
    return [tensor.clone() for tensor in pretraining.vae.state_dict().values()]


def test_a_kill_mid_pretraining_resumes_from_the_last_checkpoint(tmp_path):
    images = frames()
    pretraining = VAEPretraining(tmp_path, images, CONFIG)
    assert not pretraining.resumed
    metrics = pretraining.run(2)
    assert metrics['step'] == 2 and not (tmp_path / PRETRAIN_CHECKPOINT_FILE).exists()
    metrics = pretraining.run(3)  # passes step 3: checkpointed there
    assert metrics['step'] == 5 and np.isfinite(metrics['loss'])
    assert {'recon', 'kl', 'beta', 'holdout_recon', 'steps_per_s'} <= set(metrics)
    saved = checkpoints.load_checkpoint(tmp_path / PRETRAIN_CHECKPOINT_FILE)
    assert saved.metadata['step'] == 3

    # "kill -9" at step 5: a new stage resumes at step 3 with the saved model and optimizer.
    resumed = VAEPretraining(tmp_path, images, CONFIG)
    assert resumed.resumed and resumed.step == 3
    for mine, theirs in zip(weights(resumed), saved.modules['vae'].values()):
        torch.testing.assert_close(mine, theirs)
    assert resumed.trainer.optimizer.state_dict()['state'][0]['step'] == 3
    assert resumed.run(3)['step'] == 6
    assert checkpoints.load_checkpoint(tmp_path / PRETRAIN_CHECKPOINT_FILE).metadata['step'] == 6


def test_finish_writes_the_vae_the_nodes_and_the_learner_load(tmp_path):
    pretraining = VAEPretraining(tmp_path, frames(), CONFIG)
    pretraining.run(2)
    path = pretraining.finish()
    assert path == tmp_path / VAE_CHECKPOINT_FILE
    encoder = LatentEncoder()
    encoder.load_checkpoint(tmp_path)
    assert encoder.version == 1 and encoder.config == VAE
    mean, _ = encoder.encode(frames(1, 84)[0])
    assert mean.shape == (4,)
    version, _, data = load_vae_weights(tmp_path, latent_dim=4)
    assert version == 1 and data
    assert load_latent_variance(tmp_path, 4).shape == (4,)
    vae, version = read_vae_checkpoint(path)
    assert version == 1 and not vae.training
    # finish() checkpointed the last step: a kill before the stage moved on loses nothing.
    assert VAEPretraining(tmp_path, frames(), CONFIG).step == 2


def test_reconstructions_put_frames_beside_their_decodings(tmp_path):
    pretraining = VAEPretraining(tmp_path, frames(), CONFIG)
    image = pretraining.reconstructions(3)
    assert image.dtype == np.uint8 and image.shape == (3 * 48, 96, 3)
    np.testing.assert_array_equal(image[:48, :48], pretraining.holdout[0])


def test_vae_options_pass_through_and_frames_are_resized(tmp_path):
    config = dataclasses.replace(CONFIG, vae=dataclasses.replace(
        VAE, augmentation=AugmentationConfig(enabled=True, shift_px=2)))
    pretraining = VAEPretraining(tmp_path, frames(10, 84), config)
    assert pretraining.images.shape == (10, 48, 48, 3)
    assert pretraining.trainer.config.augmentation.enabled
    assert np.isfinite(pretraining.run(1)['loss'])
    pretraining.save()
    # Another VAE config in the same run directory is refused.
    with pytest.raises(checkpoints.CheckpointError, match='another run directory'):
        VAEPretraining(tmp_path, frames(10, 84), CONFIG)


def test_vae_input_resizes_only_when_needed():
    small = frames(2)
    assert vae_input(small, 48) is small
    assert vae_input(frames(2, 84), 48).shape == (2, 48, 48, 3)
    with pytest.raises(ValueError, match='uint8'):
        vae_input(small.astype(np.float32), 48)


def test_skew_fit_draws_minibatches_by_weight_after_the_warm_up_and_on_resume(tmp_path):
    images = frames(40)
    images[:4, 10:30, 10:30] = 255  # a few frames unlike the rest
    skew = SkewFitConfig(alpha=-1.0, density='latent_kde', warmup_fraction=0.5,
                         reweight_every=2, max_weight_ratio=20.0)
    config = dataclasses.replace(CONFIG, skew_fit=skew, steps=6, checkpoint_every=4)
    pretraining = VAEPretraining(tmp_path, images, config)
    assert 'skew_effective_frames' not in pretraining.run(3)  # the warm-up: uniform batches
    fits = []
    original = vae_training.frame_weights
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vae_training, 'frame_weights',
                      lambda *args, **kwargs: fits.append(pretraining.step)
                      or original(*args, **kwargs))
        metrics = pretraining.run(2)
    assert fits == [3] and 0 < metrics['skew_effective_frames'] < len(pretraining.train_images)
    assert pretraining.skew_weights.sum() == pytest.approx(1.0)
    assert pretraining.skew_weights.max() > 1.0 / len(pretraining.train_images)
    # Killed at step 5: resumed from the step-4 checkpoint, the weights refitted at once.
    resumed = VAEPretraining(tmp_path, images, config)
    assert resumed.step == 4 and resumed.skew_weights is None
    assert 'skew_effective_frames' in resumed.run(2) and resumed.step == 6
    with pytest.raises(ValueError, match='steps'):
        dataclasses.replace(config, steps=0)


def test_goals_only_skew_pretrains_on_uniform_batches(tmp_path):
    images = frames(40)
    images[:4, 10:30, 10:30] = 255
    skew = SkewFitConfig(alpha=-1.0, density='latent_kde', warmup_fraction=0.5,
                         reweight_every=2, skew_vae=False)
    config = dataclasses.replace(CONFIG, skew_fit=skew, steps=6, checkpoint_every=4)
    pretraining = VAEPretraining(tmp_path, images, config)
    assert 'skew_effective_frames' not in pretraining.run(6)
    assert pretraining.skew_weights is None
