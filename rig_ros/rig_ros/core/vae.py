"""RIG's convolutional beta-VAE: images to a small latent space where goals are imagined.

Images enter as float tensors [B, 3, H, W] in [0, 1]; the numpy helpers at the bottom take the
uint8 NHWC arrays the rest of the project passes around. `AugmentationConfig` (a field of
`VAEConfig`) changes the light and shifts the view of training images, so that latent
distances survive such changes in the room (`VAETrainer` applies it).
"""

import contextlib
from dataclasses import dataclass, fields
import math
from numbers import Integral, Real
from typing import Any, Iterator, Literal, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from tqdm import tqdm

# Encoder convolutions (out_channels, kernel, stride) per square input size, as in RIG.
ARCHITECTURES: dict[int, tuple[tuple[int, int, int], ...]] = {
    84: ((16, 5, 3), (32, 5, 3), (32, 5, 3)),
    48: ((16, 5, 3), (32, 3, 2), (64, 3, 2)),
}


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AugmentationConfig:
    """Random changes of the light and the view applied to VAE training images (DrQ-style).

    Each training image gets its own contrast and brightness factor and its own shift; the
    encoder sees the changed image. Encoding (goals, observations) never augments.
    """

    enabled: bool = True
    """Augment training images; False trains on the images as they are. On by default: it
    cost no accuracy on unchanged goal images (bench/goal_robustness.py, docs/results.md)."""
    shift_px: int = 4
    """Largest shift per axis in pixels of the VAE's input: the image is padded by repeating
    its border pixels and cropped back at a random offset in [-shift_px, shift_px]."""
    brightness: tuple[float, float] = (0.7, 1.3)
    """Range of the multiplicative brightness factor (pixel values are clipped to [0, 1])."""
    contrast: tuple[float, float] = (0.8, 1.2)
    """Range of the contrast factor, applied around the image's mean before the brightness."""
    target: Literal['clean', 'augmented'] = 'clean'
    """What the decoder reconstructs: 'clean' (the image before augmentation: a denoising
    objective, which makes the encoder ignore the changes) or 'augmented' (the input)."""
    consistency_weight: float = 0.0
    """Weight of the squared distance between the posterior means of the augmented and the
    clean image (summed over latent axes), added to the loss; 0: no such term."""

    def __post_init__(self) -> None:
        for name in ('brightness', 'contrast'):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.enabled, bool):
            raise ValueError(f'enabled must be a bool, got {self.enabled!r}')
        if not _is_int(self.shift_px) or self.shift_px < 0:
            raise ValueError(f'shift_px must be an integer >= 0, got {self.shift_px!r}')
        for name in ('brightness', 'contrast'):
            low_high = getattr(self, name)
            if (len(low_high) != 2 or not all(_is_number(v) for v in low_high)
                    or not 0 < low_high[0] <= low_high[1]):
                raise ValueError(f'{name} must be a range (low, high) with 0 < low <= high, '
                                 f'got {low_high!r}')
        if self.target not in ('clean', 'augmented'):
            raise ValueError(f"target must be 'clean' or 'augmented', got {self.target!r}")
        if not _is_number(self.consistency_weight) or self.consistency_weight < 0:
            raise ValueError(f'consistency_weight must be finite and >= 0, '
                             f'got {self.consistency_weight!r}')


def augment_images(x: torch.Tensor, config: AugmentationConfig,
                   generator: torch.Generator) -> torch.Tensor:
    """Return float images [B, 3, H, W] in [0, 1] with per-image contrast, brightness, shift.

    Draws from `generator` (a CPU generator) in a fixed order, so a seeded generator gives the
    same augmentation. Returns `x` itself when the config is not enabled.
    """
    if not config.enabled or len(x) == 0:
        return x
    count, _, height, width = x.shape

    def uniform(low_high: tuple[float, float]) -> torch.Tensor:
        low, high = low_high
        draw = torch.rand(count, 1, 1, 1, generator=generator)
        return (low + (high - low) * draw).to(device=x.device, dtype=x.dtype)

    brightness, contrast = uniform(config.brightness), uniform(config.contrast)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    changed = (((x - mean) * contrast + mean) * brightness).clamp_(0.0, 1.0)
    pad = config.shift_px
    if pad == 0:
        return changed
    offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator).tolist()
    padded = functional.pad(changed, (pad, pad, pad, pad), mode='replicate')
    return torch.stack([padded[i, :, top:top + height, left:left + width]
                        for i, (top, left) in enumerate(offsets)])


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and training settings of the VAE.

    image_size: side of the square input, 84 or 48 (selects the RIG architecture).
    latent_dim: latent size; RIG used 4 for reacher/pusher, Skew-Fit 16 for door/pickup.
    beta: KL weight on a reconstruction term summed over pixels. 10/128 is the released RIG
        pusher value; RIG's lab scripts used 5 with a warm-up.
    beta_warmup_steps: beta grows linearly from 0 over this many train steps (0: constant).
    likelihood: 'bernoulli' (BCE, as RIG) or 'gaussian' (squared error: fixed variance).
    learning_rate: Adam step size.
    batch_size: images per train step.
    logvar_floor: lower bound of the encoder log-variance, log(1e-3) as RIG; keeps the
        posterior from collapsing to a point, which would make latent distances meaningless.
    augmentation: training-image augmentation (an `AugmentationConfig`; a mapping of its
        fields, as JSON gives it, is converted).
    """

    image_size: int = 84
    latent_dim: int = 4
    beta: float = 10.0 / 128.0
    beta_warmup_steps: int = 0
    likelihood: Literal['bernoulli', 'gaussian'] = 'bernoulli'
    learning_rate: float = 1e-3
    batch_size: int = 128
    logvar_floor: float = math.log(1e-3)
    augmentation: AugmentationConfig = AugmentationConfig()

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, Mapping):
            object.__setattr__(self, 'augmentation', _augmentation_from(self.augmentation))
        if not isinstance(self.augmentation, AugmentationConfig):
            raise ValueError(f'augmentation must be an AugmentationConfig, '
                             f'got {type(self.augmentation).__name__}')
        if self.image_size not in ARCHITECTURES or not _is_int(self.image_size):
            raise ValueError(f'image_size must be one of {sorted(ARCHITECTURES)}, '
                             f'got {self.image_size!r}')
        for name in ('latent_dim', 'batch_size'):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f'{name} must be a positive integer, got {getattr(self, name)!r}')
        if not _is_int(self.beta_warmup_steps) or self.beta_warmup_steps < 0:
            raise ValueError(f'beta_warmup_steps must be an integer >= 0, '
                             f'got {self.beta_warmup_steps!r}')
        if not math.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f'beta must be finite and >= 0, got {self.beta!r}')
        if self.likelihood not in ('bernoulli', 'gaussian'):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', "
                             f'got {self.likelihood!r}')
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise ValueError(f'learning_rate must be finite and > 0, got {self.learning_rate!r}')
        if not math.isfinite(self.logvar_floor):
            raise ValueError(f'logvar_floor must be finite, got {self.logvar_floor!r}')

    def beta_at(self, step: int) -> float:
        """KL weight at a train step, after the linear warm-up."""
        if self.beta_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, max(step, 0) / self.beta_warmup_steps)


def _augmentation_from(values: Mapping[str, Any]) -> AugmentationConfig:
    known = {f.name for f in fields(AugmentationConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'unknown augmentation fields {unknown}')
    return AugmentationConfig(**values)


class ConvVAE(nn.Module):
    """Convolutional VAE with RIG's 84x84 or 48x48 architecture (chosen by the config)."""

    def __init__(self, config: Optional[VAEConfig] = None) -> None:
        super().__init__()
        self.config = config = config or VAEConfig()
        specs = ARCHITECTURES[config.image_size]
        channels, sizes = [3], [config.image_size]
        encoder: list[nn.Module] = []
        for out_channels, kernel, stride in specs:
            encoder += [nn.Conv2d(channels[-1], out_channels, kernel, stride),
                        nn.BatchNorm2d(out_channels), nn.ReLU()]
            channels.append(out_channels)
            sizes.append((sizes[-1] - kernel) // stride + 1)
        self.encoder = nn.Sequential(*encoder, nn.Flatten())
        flat = channels[-1] * sizes[-1] ** 2
        self.mean_head = nn.Linear(flat, config.latent_dim)
        self.logvar_head = nn.Linear(flat, config.latent_dim)
        if config.logvar_floor < 0:
            # Start near unit posterior variance rather than at the floor.
            nn.init.constant_(self.logvar_head.bias, math.log(math.expm1(-config.logvar_floor)))

        # The decoder mirrors the encoder; output padding restores sizes lost to flooring.
        decoder: list[nn.Module] = [
            nn.Linear(config.latent_dim, flat), nn.ReLU(),
            nn.Unflatten(1, (channels[-1], sizes[-1], sizes[-1])),
        ]
        for layer in reversed(range(len(specs))):
            _, kernel, stride = specs[layer]
            padding = sizes[layer] - ((sizes[layer + 1] - 1) * stride + kernel)
            decoder.append(nn.ConvTranspose2d(channels[layer + 1], channels[layer], kernel,
                                              stride, output_padding=padding))
            if layer > 0:
                decoder.append(nn.ReLU())
        self.decoder = nn.Sequential(*decoder)

    def _check_input(self, x: torch.Tensor) -> None:
        size = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size) or not x.is_floating_point():
            raise ValueError(f'expected float images [B, 3, {size}, {size}], '
                             f'got {x.dtype} {tuple(x.shape)}')

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, log-variance) of float images [B, 3, H, W] in [0, 1]."""
        self._check_input(x)
        hidden = self.encoder(x)
        logvar = self.config.logvar_floor + functional.softplus(self.logvar_head(hidden))
        return self.mean_head(hidden), logvar

    @staticmethod
    def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample z ~ N(mean, exp(logvar)) differentiably."""
        return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid decoder output [B, 3, H, W]."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] from latents [B, latent_dim]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (reconstruction, mean, logvar); z is sampled in train mode, the mean in eval."""
        mean, logvar = self.encode(x)
        z = self.reparameterize(mean, logvar) if self.training else mean
        return self.decode(z), mean, logvar

    def sample_prior(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw n latents from the prior N(0, I): RIG's imagined goals."""
        device = self.mean_head.weight.device
        return torch.randn(n, self.config.latent_dim, device=device, generator=generator)

    def reconstruction_error(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per image, summed over pixels: shape [B]."""
        if self.config.likelihood == 'bernoulli':
            error = functional.binary_cross_entropy_with_logits(logits, x, reduction='none')
        else:
            error = (torch.sigmoid(logits) - x).pow(2)
        return error.flatten(1).sum(1)

    def loss(self, x: torch.Tensor, step: int = 0, target: Optional[torch.Tensor] = None,
             anchor: Optional[torch.Tensor] = None,
             consistency_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO with beta-weighted KL, averaged over the batch, and its parts.

        target: what the decoder must reconstruct from x's latent (default x itself).
        anchor: images whose posterior means x's should equal (x's clean versions); adds
            `consistency_weight` times their squared distance ('consistency' in the metrics).
            Both are encoded in one batch.
        """
        target = x if target is None else target
        if anchor is None:
            mean, logvar = self.encode(x)
        else:
            means, logvars = self.encode(torch.cat([x, anchor]))
            mean, logvar = means[:len(x)], logvars[:len(x)]
        logits = self.decode_logits(self.reparameterize(mean, logvar))
        recon = self.reconstruction_error(logits, target)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        beta = self.config.beta_at(step)
        per_image = recon + beta * kl
        metrics = {'recon': recon.mean().item(), 'kl': kl.mean().item(), 'beta': beta}
        if anchor is not None:
            consistency = (mean - means[len(x):]).pow(2).sum(1)
            per_image = per_image + consistency_weight * consistency
            metrics['consistency'] = consistency.mean().item()
        loss = per_image.mean()
        return loss, {'loss': loss.item(), **metrics}


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Put a module in eval mode (batch-norm running statistics) and restore its mode after."""
    if not module.training:
        # Already evaluating (a node's encoder): switching every submodule twice cost 0.6 ms
        # of a 2 ms frame encoding (measured in a composed chain). eval() and train() set the
        # whole tree, so the top module's mode is the tree's.
        yield module
        return
    module.eval()
    try:
        yield module
    finally:
        module.train()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def images_to_tensor(images: np.ndarray,
                     device: Union[torch.device, str, None] = None) -> torch.Tensor:
    """Convert uint8 NHWC RGB images to float NCHW in [0, 1]."""
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4
            or images.shape[3] != 3):
        shape = getattr(images, 'shape', None)
        raise ValueError(f'expected uint8 images [N, H, W, 3], got '
                         f'{getattr(images, "dtype", type(images).__name__)} {shape}')
    # Move the compact uint8 data first, convert on the target device.
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def encode_images(vae: ConvVAE, images: np.ndarray,
                  batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Encode uint8 NHWC images to float32 (mean, logvar) arrays [N, latent_dim]."""
    means, logvars = [], []
    with evaluating(vae), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            mean, logvar = vae.encode(images_to_tensor(images[start:start + batch_size],
                                                       _device(vae)))
            means.append(mean.float().cpu().numpy())
            logvars.append(logvar.float().cpu().numpy())
    if not means:
        images_to_tensor(images)  # still reject malformed empty input
        empty = np.zeros((0, vae.config.latent_dim), np.float32)
        return empty, empty.copy()
    return np.concatenate(means), np.concatenate(logvars)


def latent_variance(vae: ConvVAE, images: np.ndarray) -> np.ndarray:
    """Return the encoder's mean posterior variance per latent axis over uint8 NHWC images.

    The fixed diagonal metric of the Mahalanobis latent reward (per-sample variances would
    have to live in the replay buffer).
    """
    _, logvar = encode_images(vae, images)
    return np.exp(logvar).mean(axis=0).astype(np.float32)


def decode_latents(vae: ConvVAE, z: Union[np.ndarray, torch.Tensor],
                   batch_size: int = 512) -> np.ndarray:
    """Decode latents [N, latent_dim] to uint8 NHWC RGB images."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.ndim != 2 or z.shape[1] != vae.config.latent_dim:
        raise ValueError(f'expected latents [N, {vae.config.latent_dim}], got {tuple(z.shape)}')
    chunks = []
    with evaluating(vae), torch.inference_mode():
        for start in range(0, len(z), batch_size):
            images = vae.decode(z[start:start + batch_size].to(_device(vae)))
            chunks.append(images.mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu())
    size = vae.config.image_size
    if not chunks:
        return np.zeros((0, size, size, 3), np.uint8)
    return torch.cat(chunks).numpy()


# Fields a trainer may set differently from the model's own config.
_TRAINER_FIELDS = ('learning_rate', 'batch_size', 'augmentation')
_SEED_MASK = 2**64 - 1  # torch seeds are 64-bit


class VAETrainer:
    """Adam training of a ConvVAE on uint8 images, with a step counter for beta warm-up.

    The config's `augmentation` is applied to every training batch. Its draws are a function
    of `seed` (`fit` sets it to its own seed) and the step counter: `generator` is re-seeded
    from both before every augmented step, so training resumed from `state_dict()` draws what
    uninterrupted training would have.
    """

    def __init__(self, vae: ConvVAE, config: Optional[VAEConfig] = None,
                 seed: int = 0) -> None:
        config = config or vae.config
        mismatched = [f.name for f in fields(config) if f.name not in _TRAINER_FIELDS
                      and getattr(config, f.name) != getattr(vae.config, f.name)]
        if mismatched:
            raise ValueError(f'trainer config differs from the model config in {mismatched}; '
                             f'only {list(_TRAINER_FIELDS)} may differ')
        self.vae = vae
        self.config = config
        self.optimizer = torch.optim.Adam(vae.parameters(), lr=config.learning_rate)
        self.seed = seed
        self.generator = torch.Generator()
        self.step = 0

    def train_step(self, images: np.ndarray) -> dict[str, float]:
        """One gradient step on a uint8 NHWC batch; returns loss, recon, kl and beta.

        With augmentation the encoder sees the augmented batch and the decoder reconstructs
        the target the config names; 'consistency' joins the metrics when it is weighted.
        """
        self.vae.train()
        clean = images_to_tensor(images, _device(self.vae))
        augmentation = self.config.augmentation
        if not augmentation.enabled:
            loss, metrics = self.vae.loss(clean, self.step)
        else:
            self.generator.manual_seed((self.seed * 1_000_003 + self.step) & _SEED_MASK)
            augmented = augment_images(clean, augmentation, self.generator)
            target = clean if augmentation.target == 'clean' else augmented
            anchor = clean if augmentation.consistency_weight > 0 else None
            loss, metrics = self.vae.loss(augmented, self.step, target=target, anchor=anchor,
                                          consistency_weight=augmentation.consistency_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return metrics

    def reconstruction_error(self, images: np.ndarray, batch_size: int = 512) -> float:
        """Mean per-image reconstruction error from the posterior mean (eval mode)."""
        total = 0.0
        with evaluating(self.vae), torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = images_to_tensor(images[start:start + batch_size], _device(self.vae))
                mean, _ = self.vae.encode(x)
                total += self.vae.reconstruction_error(self.vae.decode_logits(mean), x).sum()
        return float(total) / max(len(images), 1)

    def fit(self, images: np.ndarray, steps: int, progress: bool = True,
            holdout_fraction: float = 0.1, eval_every: int = 500,
            seed: int = 0) -> list[dict[str, float]]:
        """Train for `steps` random minibatches; returns per-step metrics.

        A `holdout_fraction` of the images is kept out of training; its reconstruction error
        ('holdout_recon') is added to the metrics every `eval_every` steps and at the end.
        """
        images_to_tensor(images[:0])  # validate layout before splitting
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f'holdout_fraction must be in [0, 1), got {holdout_fraction}')
        if steps < 0 or eval_every < 1:
            raise ValueError(f'need steps >= 0 and eval_every >= 1, got {steps}, {eval_every}')
        rng = np.random.default_rng(seed)
        self.seed = seed
        order = rng.permutation(len(images))
        n_holdout = int(round(len(images) * holdout_fraction))
        holdout, train = images[order[:n_holdout]], images[order[n_holdout:]]
        if len(train) == 0:
            raise ValueError('no training images left after the hold-out split')
        batch_size = min(self.config.batch_size, len(train))
        history = []
        with tqdm(total=steps, disable=not progress, desc='VAE', unit='step') as bar:
            for i in range(steps):
                batch = train[rng.choice(len(train), size=batch_size, replace=False)]
                metrics = self.train_step(batch)
                if n_holdout and ((i + 1) % eval_every == 0 or i + 1 == steps):
                    metrics['holdout_recon'] = self.reconstruction_error(holdout)
                history.append(metrics)
                bar.set_postfix(loss=f'{metrics["loss"]:.1f}', kl=f'{metrics["kl"]:.2f}',
                                refresh=False)
                bar.update()
        return history

    def state_dict(self) -> dict:
        """VAE weights, Adam state and step counter."""
        return {'vae': self.vae.state_dict(), 'optimizer': self.optimizer.state_dict(),
                'step': self.step}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.vae.load_state_dict(state['vae'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.step = int(state['step'])
