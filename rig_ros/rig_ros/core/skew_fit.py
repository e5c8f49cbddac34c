"""Skew-Fit's skewing (Pong et al. 2020): train the VAE and imagine goals on rare frames more.

Each frame x gets a weight proportional to p(x)^alpha, alpha in [-1, 0) (alpha 0 is plain RIG:
uniform weights, nothing skewed), where p is the density the VAE assigns to it. Frames the
exploration rarely saw (the puck pushed somewhere new) weigh more, so the VAE learns them and
the imagined goals ask for them, which flattens the state distribution over training.

Density (`SkewFitConfig.density`):
- 'importance' (Skew-Fit's): log p(x) ~ log mean_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x),
  with the VAE's own training likelihood (minus `ConvVAE.reconstruction_error`: Bernoulli, or
  the fixed-variance Gaussian's squared error); constants shared by every frame are dropped,
  they cancel in normalised weights. Costs `importance_samples` decodes per frame.
- 'latent_kde': a Gaussian kernel density estimate over the frames' encoder means (Scott's
  bandwidth), i.e. how crowded a frame's neighbourhood in latent space is. One encode per
  frame plus N^2 distances: cheaper than decoding, and it measures rarity in the set at hand
  directly (the latent prior density N(mean; 0, I) does not: the encoder need not put rare
  frames far out).

Weights are computed in log space (a softmax of alpha log p) and then capped at
`max_weight_ratio` times the uniform weight (the excess goes to the other frames): an image
VAE's log p spans hundreds of nats across frames, and uncapped a handful of frames would take
all the weight.

What uses them: `fit_skewed` (VAE training minibatches drawn by weight, after an unweighted
warm-up: the density of an untrained VAE is noise), `SkewedGoalSampler` (imagined goals: the
encoder means of frames drawn by weight), and `SkewedVAEFineTuning` (online fine-tuning on the
replay's frames drawn by weight, then the goal sampler refitted to the replay).
The graph's hosts hold latents, not frames, where they imagine goals: `latent_skew_weights`
(the 'latent_kde' density of latents) weighs the goal scheduler's pool of seen latents, and
`skewed_replay_latent_goals` the learner's replay latents for relabelling. Its VAE pretraining
(`core.vae_training`) draws minibatches by `frame_weights`, as `fit_skewed` does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, Mapping, Optional

import numpy as np
import torch
from tqdm import tqdm

from rig_ros.core.hands import HandBox
from rig_ros.core.replay import GoalReplayBuffer, GoalSampler
from rig_ros.core.trainer import HandBoxSlots, VAEFineTuning
from rig_ros.core.vae import (
    ConvVAE, encode_images, evaluating, images_to_tensor, VAEConfig, VAETrainer)

DENSITY_KINDS = ('importance', 'latent_kde')


@dataclasses.dataclass(frozen=True)
class SkewFitConfig:
    """Skew-Fit's skewing of VAE training frames and imagined goals; alpha 0: off (RIG)."""

    alpha: float = 0.0
    """Skew exponent in [-1, 0): weights ~ p(x)^alpha; 0 turns skewing off (RIG)."""
    density: Literal['importance', 'latent_kde'] = 'importance'
    """How p(x) is estimated (see the module doc)."""
    importance_samples: int = 10
    """'importance': latent samples per frame."""
    max_weight_ratio: float = 20.0
    """Cap of a frame's weight, in multiples of the uniform weight 1/N (>= 1)."""
    warmup_fraction: float = 0.5
    """Share of VAE pretraining steps trained unweighted before the first weights."""
    reweight_every: int = 500
    """VAE training steps between re-estimates of the weights."""
    max_density_frames: int = 5000
    """At most this many frames (a seeded subset) are scored for the goal sampler."""
    skew_vae: bool = True
    """Skew the VAE's training frames too (Skew-Fit); False skews the imagined goals alone."""

    def __post_init__(self) -> None:
        """Reject bad values, naming the field."""
        if not (math.isfinite(self.alpha) and -1.0 <= self.alpha <= 0.0):
            raise ValueError(f'alpha must be in [-1, 0] (0: off), got {self.alpha!r}')
        if self.density not in DENSITY_KINDS:
            raise ValueError(f'density must be one of {DENSITY_KINDS}, got {self.density!r}')
        for name in ('importance_samples', 'reweight_every', 'max_density_frames'):
            if int(getattr(self, name)) < 1:
                raise ValueError(f'{name} must be positive, got {getattr(self, name)!r}')
        if not self.max_weight_ratio >= 1.0:
            raise ValueError(f'max_weight_ratio must be >= 1, got {self.max_weight_ratio!r}')
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f'warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}')
        if not isinstance(self.skew_vae, bool):
            raise ValueError(f'skew_vae must be a bool, got {self.skew_vae!r}')

    @property
    def enabled(self) -> bool:
        """Whether anything is skewed (alpha below 0): the imagined goals at least."""
        return self.alpha < 0.0

    @property
    def skews_vae(self) -> bool:
        """Whether the VAE's training frames are skewed (pretraining and fine-tuning)."""
        return self.enabled and self.skew_vae


def log_density(vae: ConvVAE, images: np.ndarray, config: SkewFitConfig, seed: int = 0,
                batch_size: int = 256) -> np.ndarray:
    """Return each uint8 NHWC frame's log p(x) under the VAE, up to a shared constant: (N,)."""
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    with evaluating(vae), torch.inference_mode():
        device = next(vae.parameters()).device
        for start in range(0, len(images), batch_size):
            x = images_to_tensor(images[start:start + batch_size], device)
            mean, logvar = vae.encode(x)
            if config.density == 'latent_kde':
                chunks.append(mean)
                continue
            std = torch.exp(0.5 * logvar)
            terms = []
            for _ in range(config.importance_samples):
                noise = torch.randn(mean.shape, generator=generator).to(device)
                z = mean + std * noise
                log_likelihood = -vae.reconstruction_error(vae.decode_logits(z), x)
                log_prior = -0.5 * z.pow(2).sum(1)
                log_posterior = -0.5 * noise.pow(2).sum(1) - 0.5 * logvar.sum(1)
                terms.append(log_likelihood + log_prior - log_posterior)
            chunks.append(torch.logsumexp(torch.stack(terms), 0)
                          - math.log(config.importance_samples))
    if not chunks:
        images_to_tensor(images)  # reject malformed empty input
        return np.zeros(0)
    values = torch.cat(chunks).double().cpu().numpy()
    return kde_log_density(values) if config.density == 'latent_kde' else values


def kde_log_density(points: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Return each point's log density under a Gaussian KDE of all of them, up to a constant.

    Bandwidth: Scott's rule, the points' mean spread times N^(-1 / (d + 4)).
    """
    count, dim = points.shape
    spread = float(np.mean(points.std(axis=0))) or 1.0
    bandwidth = spread * count ** (-1.0 / (dim + 4))
    result = np.empty(count)
    for start in range(0, count, chunk):
        squared = ((points[start:start + chunk, None] - points[None]) ** 2).sum(-1)
        exponent = -0.5 * squared / bandwidth ** 2
        peak = exponent.max(axis=1, keepdims=True)
        result[start:start + chunk] = (peak[:, 0]
                                       + np.log(np.exp(exponent - peak).sum(axis=1)))
    return result


def skew_weights(log_p: np.ndarray, alpha: float, max_weight_ratio: float) -> np.ndarray:
    """Return sampling weights ~ p^alpha (summing to 1), each at most max_weight_ratio / N."""
    log_p = np.asarray(log_p, dtype=np.float64)
    count = len(log_p)
    if count == 0:
        return np.zeros(0)
    if alpha == 0.0:
        return np.full(count, 1.0 / count)
    logits = alpha * log_p

    def softmax(values: np.ndarray) -> np.ndarray:
        shifted = np.exp(values - values.max())
        return shifted / shifted.sum()

    weights = softmax(logits)
    cap = max_weight_ratio / count
    # Water-filling: pin the frames over the cap to it and spread the rest of the mass over
    # the others in proportion (from the logits: their weights may have underflowed); repeat,
    # since that can lift others over the cap.
    capped = np.zeros(count, bool)
    while True:
        over = weights > cap * (1.0 + 1e-9)
        if not over.any():
            break
        capped |= over
        if capped.all():
            break
        weights[capped] = cap
        weights[~capped] = (1.0 - cap * capped.sum()) * softmax(logits[~capped])
    return weights / weights.sum()


def latent_skew_weights(latents: np.ndarray, alpha: float,
                        max_weight_ratio: float) -> np.ndarray:
    """Return sampling weights ~ p(z)^alpha of latents (N, d), p their Gaussian KDE.

    Uniform for alpha 0 or fewer than two latents (a density needs neighbours).
    """
    count = len(latents)
    if alpha == 0.0 or count < 2:
        return np.full(count, 1.0 / max(count, 1))
    # Small chunks: a host imagines goals beside its other work; 256 rows of N distances.
    log_p = kde_log_density(np.asarray(latents, np.float64), chunk=256)
    return skew_weights(log_p, alpha, max_weight_ratio)


def skewed_replay_latent_goals(buffer: Callable[[], GoalReplayBuffer], fallback: GoalSampler,
                               rng: np.random.Generator, config: SkewFitConfig,
                               hand_box: Optional[HandBox] = None) -> GoalSampler:
    """Return a sampler of imagined goals: the replay's latents drawn by skewed weight.

    The skewed form of `core.trainer.replay_latent_goals` (the graph learner's 'frames'
    goals; with hand_box, only latents of frames with the hand in it). Weights are the
    'latent_kde' density's (`latent_skew_weights`) over a seeded subset of at most
    `config.max_density_frames` of those latents, refitted once `config.reweight_every` more
    transitions are stored, after the replay's latents are re-encoded (a fine-tuned VAE),
    and when the replay is another (a restore). While there is none, `fallback` draws.
    """
    fitted: dict[str, Any] = {'buffer': None, 'refreshes': -1, 'size': -1,
                              'latents': np.zeros((0, 0), np.float32)}
    subsets = np.random.default_rng((config.max_density_frames, 2))
    slots = HandBoxSlots(hand_box)

    def refit(replay: GoalReplayBuffer) -> None:
        stored = replay.latents()[slots(replay)]
        picks = np.arange(len(stored))
        if len(stored) > config.max_density_frames:
            picks = np.sort(subsets.choice(len(stored), config.max_density_frames,
                                           replace=False))
        fitted.update(buffer=replay, refreshes=replay.latent_refreshes, size=len(replay),
                      latents=stored[picks].copy(),
                      weights=latent_skew_weights(stored[picks], config.alpha,
                                                  config.max_weight_ratio))

    def sample(count: int) -> np.ndarray:
        replay = buffer()
        if (fitted['buffer'] is not replay or fitted['refreshes'] != replay.latent_refreshes
                or abs(len(replay) - fitted['size']) >= config.reweight_every
                or not len(fitted['latents'])):
            refit(replay)
        if not len(fitted['latents']):
            return fallback(count)
        chosen = rng.choice(len(fitted['latents']), count, p=fitted['weights'])
        return fitted['latents'][chosen].astype(np.float32)
    return sample


def effective_frames(weights: np.ndarray) -> float:
    """Return 1 / sum(w^2): how many frames the weights are worth (N when uniform)."""
    return float(1.0 / np.sum(np.square(weights))) if len(weights) else 0.0


def frame_weights(vae: ConvVAE, images: np.ndarray, config: SkewFitConfig,
                  seed: int = 0) -> np.ndarray:
    """Return each frame's skewed sampling weight under the VAE (uniform when alpha is 0)."""
    if not config.enabled:
        return np.full(len(images), 1.0 / max(len(images), 1))
    return skew_weights(log_density(vae, images, config, seed), config.alpha,
                        config.max_weight_ratio)


def fit_skewed(trainer: VAETrainer, images: np.ndarray, steps: int, config: SkewFitConfig,
               seed: int = 0, progress: bool = True,
               warmup_fraction: Optional[float] = None) -> list[dict[str, float]]:
    """Train `steps` VAE minibatches, those after the warm-up drawn by skewed weight.

    The warm-up (`config.warmup_fraction` of the steps unless `warmup_fraction` says
    otherwise) is `VAETrainer.fit` (uniform batches, hold-out metrics). Afterwards batches are
    drawn with replacement by weight, re-weighted every `config.reweight_every` steps with the
    VAE as it is then; metrics gain 'skew_effective_frames'. Alpha 0 or `skew_vae` off:
    `VAETrainer.fit` alone.
    """
    if not config.skews_vae:
        return trainer.fit(images, steps, progress=progress, seed=seed)
    share = config.warmup_fraction if warmup_fraction is None else warmup_fraction
    warmup = int(steps * share)
    history = trainer.fit(images, warmup, progress=progress, seed=seed) if warmup else []
    rng = np.random.default_rng((seed, 1))
    batch_size = min(trainer.config.batch_size, len(images))
    weights = np.zeros(0)
    for index in tqdm(range(steps - warmup), desc='VAE (skewed)', disable=not progress,
                      unit='step'):
        if index % config.reweight_every == 0:
            weights = frame_weights(trainer.vae, images, config, seed=seed + index)
        metrics = trainer.train_step(images[rng.choice(len(images), batch_size, p=weights)])
        metrics['skew_effective_frames'] = effective_frames(weights)
        history.append(metrics)
    return history


class SkewedGoalSampler:
    """Imagined goals from the skewed frame distribution: encoder means of frames by weight.

    Call `fit` (again after the VAE changes) before drawing; a `GoalSampler` (count -> goals).
    """

    def __init__(self, config: SkewFitConfig, rng: np.random.Generator, seed: int = 0) -> None:
        self.config = config
        self.rng = rng
        self.seed = seed
        self.latents: Optional[np.ndarray] = None
        self.weights: Optional[np.ndarray] = None
        self.fits = 0

    def fit(self, vae: ConvVAE, images: np.ndarray,
            read: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        """Score `images` (a seeded subset of at most max_density_frames) under `vae`.

        read: maps the frames' encoder means to the goals drawn (None: the means, as observed).
        """
        if len(images) == 0:
            raise ValueError('need frames to imagine goals from')
        if not images.flags.writeable:  # a replay's read-only view; torch wants writable
            images = images.copy()
        select = np.random.default_rng((self.seed, self.fits))
        if len(images) > self.config.max_density_frames:
            images = images[np.sort(select.choice(len(images), self.config.max_density_frames,
                                                  replace=False))]
        latents = encode_images(vae, images)[0]
        self.latents = latents if read is None else read(latents)
        self.weights = frame_weights(vae, images, self.config, seed=self.seed + self.fits)
        self.fits += 1

    def __call__(self, count: int) -> np.ndarray:
        """Draw `count` goals, (count, latent_dim) float32."""
        if self.latents is None or self.weights is None:
            raise RuntimeError('SkewedGoalSampler.fit must run before goals are drawn')
        chosen = self.rng.choice(len(self.latents), count, p=self.weights)
        return self.latents[chosen].astype(np.float32)


class SkewedVAEFineTuning(VAEFineTuning):
    """Online fine-tuning on the replay's frames drawn by skewed weight, goals refitted after.

    As `VAEFineTuning` (every `every` stored transitions, `steps` minibatches), but every
    minibatch is drawn by weight (no warm-up: the VAE is pretrained), and after re-encoding the
    replay the goal sampler is refitted to the replay's frames under the new VAE (goals None:
    a host whose goals follow the replay's latents by themselves, the graph's learner).
    """

    def __init__(self, vae: ConvVAE, config: VAEConfig, every: int, steps: int,
                 skew: SkewFitConfig, goals: Optional[SkewedGoalSampler], seed: int = 0,
                 until: int = 0) -> None:
        super().__init__(vae, config, every, steps, until)
        self.skew = skew
        self.goals = goals
        self.seed = seed
        self.rounds = 0

    def run(self, buffer: GoalReplayBuffer) -> Mapping[str, float]:
        """Fine-tune by weight, re-encode the replay, refit the goals to its frames."""
        images = buffer.images().copy()
        metrics = self.train(images)
        self.refresh(buffer)
        if self.goals is not None:
            self.goals.fit(self.vae, images)
        return metrics

    def train(self, images: np.ndarray) -> Mapping[str, float]:
        """Fine-tune on `images` drawn by weight; return the last metrics."""
        self.rounds += 1
        history = fit_skewed(VAETrainer(self.vae, self.config), images, self.steps, self.skew,
                             seed=self.seed + self.rounds, progress=False, warmup_fraction=0.0)
        self.vae.eval()
        return history[-1] if history else {}
