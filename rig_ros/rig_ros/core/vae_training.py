"""VAE pretraining that survives a kill, and the VAE files the nodes load.

`VAEPretraining` trains the beta-VAE (`core.vae.VAETrainer`, so every `VAEConfig` option,
augmentation included, applies) on the exploration frames in calls of a few steps
(`run(steps)`), so the learner's worker can publish progress and reconstructions in between.
Every `checkpoint_every` steps it writes model, optimizer and step counter to
`vae_pretrain.safetensors` (`core.checkpoints`): a run killed mid-pretraining resumes from
there, not from step 0. `finish()` writes `vae.safetensors`, the file the nodes and the
learner load (`core.encoder.LatentEncoder.load_checkpoint`, `core.learner.load_vae_weights`):
module 'vae', the VAE's config, metadata `version` 1 and the latent variance of the
Mahalanobis reward.

Fine-tuning during practice is `core.trainer.VAEFineTuning` (the trainer's `VAEStage`, the same
`VAETrainer` on the replay's images, with the same `VAEConfig`), wrapped by
`core.latent_versions.VersionedFineTuning` to give each round a new version; it writes the new
weights with `write_vae_checkpoint`, as `finish()` does.

With Skew-Fit (`skew_fit.alpha` < 0, `skew_fit.skew_vae` on) the steps after the warm-up
(`skew_fit.warmup_fraction` of `steps`) draw their minibatches by skewed weight
(`core.skew_fit.frame_weights`, refitted every `skew_fit.reweight_every` steps), as the
pipeline's `fit_skewed` does. A resumed run
refits the weights at its first skewed step: the weights are a function of the VAE it resumed.

Frames are made the VAE's input size first (`vae_input`): the camera pipeline's frames are
84x84, a 48x48 VAE gets them resized as the encoder node resizes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import os
import pathlib
import time
from typing import Any, Mapping, Optional

import numpy as np
import torch

from rig_ros.core import checkpoints
from rig_ros.core.encoder import (
    LATENT_VARIANCE_KEY, resolve_checkpoint, VAE_CHECKPOINT_FILE, vae_config_from_dict)
from rig_ros.core.preprocessing import preprocess, PreprocessConfig
from rig_ros.core.skew_fit import effective_frames, frame_weights, SkewFitConfig
from rig_ros.core.vae import (
    ConvVAE, decode_latents, encode_images, latent_variance, VAEConfig, VAETrainer)
from rig_ros.interfaces.names import VAE_MODEL

FORMAT_VERSION = 1
PRETRAIN_CHECKPOINT_FILE = 'vae_pretrain.safetensors'
PRETRAINED_VERSION = 1  # the version of the VAE finish() writes


@dataclass(frozen=True)
class VAEPretrainingConfig:
    """The VAE pretraining stage."""

    vae: VAEConfig = field(default_factory=VAEConfig)
    """The VAE and its training (image size, latent size, beta, augmentation, ...)."""
    checkpoint_every: int = 500
    """VAE steps between checkpoints (a kill loses at most this many); 0: only save()."""
    holdout_fraction: float = 0.05
    """Fraction of the frames kept out of training; their reconstruction error
    ('holdout_recon') is measured at every checkpoint."""
    seed: int = 0
    """Seeds the initial weights, the hold-out split and the minibatches."""
    skew_fit: SkewFitConfig = field(default_factory=SkewFitConfig)
    """Skew-Fit's skewed minibatches after the warm-up (alpha 0: uniform, RIG)."""
    steps: int = 5000
    """Steps the pretraining will take in all (the warm-up is a share of them)."""

    def __post_init__(self) -> None:
        """Check the values; an error names the field."""
        if self.steps < 1:
            raise ValueError(f'steps must be positive, got {self.steps!r}')
        if self.checkpoint_every < 0:
            raise ValueError(f'checkpoint_every must be >= 0, got {self.checkpoint_every!r}')
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f'holdout_fraction must be in [0, 1), '
                             f'got {self.holdout_fraction!r}')


def vae_input(images: np.ndarray, size: int) -> np.ndarray:
    """Return uint8 NHWC frames resized to size x size (the frames themselves if they are)."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f'expected uint8 frames [N, H, W, 3], got {images.dtype} '
                         f'{images.shape}')
    if images.shape[1:3] == (size, size):
        return images
    config = PreprocessConfig(size=size)
    resized = np.empty((len(images), size, size, 3), np.uint8)
    for index, image in enumerate(images):
        resized[index] = preprocess(image, config)
    return resized


def write_vae_checkpoint(path: str | os.PathLike, vae: ConvVAE, version: int,
                         metadata: Optional[Mapping[str, Any]] = None) -> pathlib.Path:
    """Write `vae` as the nodes load it (module 'vae', its config, metadata `version`)."""
    path = pathlib.Path(path)
    checkpoints.save_checkpoint(
        path, {VAE_MODEL: vae.state_dict()}, {}, asdict(vae.config),
        {'format_version': FORMAT_VERSION, **(metadata or {}), 'version': int(version)})
    return path


def read_vae_checkpoint(path: str | os.PathLike,
                        device: str | torch.device = 'cpu') -> tuple[ConvVAE, int]:
    """Return the VAE of a checkpoint file or run directory (eval mode) and its version.

    The version is the metadata's (1 when it has none: the pipeline's files). Raises
    CheckpointError for a file that is unreadable or holds no fitting VAE.
    """
    file = resolve_checkpoint(path)
    try:
        saved = checkpoints.load_checkpoint(file)
        vae = ConvVAE(vae_config_from_dict(saved.config)).to(device)
        vae.load_state_dict(saved.modules[VAE_MODEL])
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as error:
        raise checkpoints.CheckpointError(f'{file} holds no usable VAE: {error!r}') from None
    version = saved.metadata.get('version')
    valid = isinstance(version, int) and not isinstance(version, bool) and version > 0
    return vae.eval(), version if valid else PRETRAINED_VERSION


class VAEPretraining:
    """The resumable VAE pretraining of a run directory (see the module doc).

    images: the exploration frames, uint8 [N, H, W, 3] of any size (resized to the VAE's).
    Resumes `run_dir/vae_pretrain.safetensors` when there is one; raises CheckpointError when
    it is unreadable or of another VAE config (use another run directory).
    """

    def __init__(self, run_dir: str | os.PathLike, images: np.ndarray,
                 config: Optional[VAEPretrainingConfig] = None, *,
                 device: str | torch.device = 'cpu') -> None:
        self.config = config = config or VAEPretrainingConfig()
        self.run_dir = pathlib.Path(run_dir)
        self.images = vae_input(images, config.vae.image_size)
        if len(self.images) < 2:
            raise ValueError(f'pretraining needs at least 2 frames, got {len(self.images)}')
        order = np.random.default_rng(config.seed).permutation(len(self.images))
        holdout = min(int(round(len(order) * config.holdout_fraction)), len(order) - 1)
        self.holdout = self.images[order[:holdout]]
        self.train_images = self.images[order[holdout:]]
        torch.manual_seed(config.seed)
        self.vae = ConvVAE(config.vae).to(device)
        self.trainer = VAETrainer(self.vae, config.vae, seed=config.seed)
        self.last_metrics: dict[str, float] = {}
        self.skew_weights: Optional[np.ndarray] = None  # minibatch weights of train_images
        self._skew_fitted_at = -1  # the step they were fitted at
        self.resumed = self._resume()

    @property
    def checkpoint_path(self) -> pathlib.Path:
        """The pretraining checkpoint (model, optimizer, step)."""
        return self.run_dir / PRETRAIN_CHECKPOINT_FILE

    @property
    def step(self) -> int:
        """VAE steps done, resumed ones included."""
        return self.trainer.step

    def run(self, steps: int) -> dict[str, float]:
        """Train `steps` minibatches, checkpointing on the way; return progress metrics.

        The metrics: 'step' (done in all), the last step's 'loss', 'recon', 'kl', 'beta' (and
        'consistency' with that augmentation), the latest 'holdout_recon' and 'steps_per_s';
        skewed steps add 'skew_effective_frames' (what the weights are worth in frames).
        """
        config = self.config
        # Minibatches and augmentation draws are seeded by the step the call starts at: a
        # resumed run does not draw step 0's again.
        rng = np.random.default_rng([config.seed, self.step])
        self.trainer.generator.manual_seed(config.seed * 1_000_003 + self.step)
        batch_size = min(config.vae.batch_size, len(self.train_images))
        start = time.perf_counter()
        for _ in range(steps):
            weights = self._skew_weights()
            if weights is None:
                picks = rng.choice(len(self.train_images), size=batch_size, replace=False)
            else:  # with replacement, as fit_skewed: a rare frame may fill several slots
                picks = rng.choice(len(self.train_images), size=batch_size, p=weights)
                self.last_metrics['skew_effective_frames'] = effective_frames(weights)
            self.last_metrics.update(self.trainer.train_step(self.train_images[picks]))
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save()
        self.vae.eval()
        elapsed = time.perf_counter() - start
        return {**self.last_metrics, 'step': self.step,
                'steps_per_s': steps / elapsed if steps and elapsed > 0 else 0.0}

    def _skew_weights(self) -> Optional[np.ndarray]:
        """Return the next step's minibatch weights (None: uniform, no skew or warm-up)."""
        skew = self.config.skew_fit
        warmup = int(self.config.steps * skew.warmup_fraction)
        if not skew.skews_vae or self.step < warmup:
            return None
        due = (self.step - warmup) % skew.reweight_every == 0
        if self.skew_weights is None or (due and self._skew_fitted_at != self.step):
            self.skew_weights = frame_weights(self.vae, self.train_images, skew,
                                              seed=self.config.seed + self.step)
            self._skew_fitted_at = self.step
        return self.skew_weights

    def save(self) -> pathlib.Path:
        """Measure the hold-out error and write the pretraining checkpoint; return its path."""
        if len(self.holdout):
            self.last_metrics['holdout_recon'] = self.trainer.reconstruction_error(self.holdout)
        state = self.trainer.state_dict()
        checkpoints.save_checkpoint(
            self.checkpoint_path, {VAE_MODEL: state['vae']}, {VAE_MODEL: state['optimizer']},
            asdict(self.config.vae),
            {'format_version': FORMAT_VERSION, 'step': state['step'],
             'images': len(self.images), 'metrics': self.last_metrics})
        return self.checkpoint_path

    def _resume(self) -> bool:
        path = self.checkpoint_path
        if not path.is_file():
            return False
        saved = checkpoints.load_checkpoint(path)
        mine = json.loads(json.dumps(asdict(self.config.vae)))
        if saved.config != mine:
            raise checkpoints.CheckpointError(
                f'{path} pretrains a VAE of config {saved.config}, not {mine}: use another '
                'run directory')
        try:
            self.trainer.load_state_dict({'vae': saved.modules[VAE_MODEL],
                                          'optimizer': saved.optimizers[VAE_MODEL],
                                          'step': saved.metadata['step']})
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            text = ' '.join(str(error).split())[:300]
            raise checkpoints.CheckpointError(f'{path} does not fit the VAE: {text}') from None
        self.last_metrics = {key: float(value)
                             for key, value in saved.metadata.get('metrics', {}).items()}
        self.vae.eval()
        return True

    def reconstructions(self, count: int) -> np.ndarray:
        """Return `count` frames beside their reconstructions as one uint8 image.

        Rows of (frame | reconstruction), [count * S, 2 * S, 3] for a VAE of side S: the
        same hold-out frames (training frames if none are held out) every time, so a viewer
        of rig/reconstruction sees them improve.
        """
        source = self.holdout if len(self.holdout) else self.train_images
        picks = np.unique(np.linspace(0, len(source) - 1, max(count, 1)).round().astype(int))
        frames = source[picks]
        decoded = decode_latents(self.vae, encode_images(self.vae, frames)[0])
        pairs = np.concatenate([frames, decoded], axis=2)
        return pairs.reshape(-1, *pairs.shape[2:])

    def finish(self) -> pathlib.Path:
        """Checkpoint, then write `vae.safetensors` (version 1) into the run directory.

        Returns its path. Writing it again (after a kill before the stage moved on) gives the
        same file.
        """
        self.save()
        variance = latent_variance(self.vae, self.images)
        return write_vae_checkpoint(
            self.run_dir / VAE_CHECKPOINT_FILE, self.vae, PRETRAINED_VERSION,
            {'steps': self.step, LATENT_VARIANCE_KEY: variance.tolist()})
