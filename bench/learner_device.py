"""Learner throughput on each torch device: what a GPU learner machine is worth.

docs/fleet.md lets the learner run alone on another machine (`learner.device: cuda`). This
measures, side by side in one process, what the learner's own work costs on the CPU (one torch
thread, the learner node's default, and every core) and on CUDA where there is one:
- TD3 updates/s of the learner (RIG's networks: 400x300, batches of 128, 16 latents, HER
  relabelling from 5,000 stored transitions, weights broadcast every 100 updates), and the
  practice steps/s they sustain at `updates_per_step` (RIG's 4);
- VAE training steps/s (48x48, batches of 128, the learner's augmentation), the cost of
  pretraining and of each fine-tuning round;
- frames/s encoded one at a time (the encoder service) and in batches of 512 (the replay's
  re-encoding after a fine-tuning round).
Prints readable lines, then, last, one JSON line: `<figure>_<device>` for each device measured
(`cpu1`, `cpu<N>`, `cuda`) and `cuda_over_cpu1_<figure>` where CUDA was measured.
"""

import argparse
import json
import os
import sys
import time
from typing import Callable

import numpy as np
import torch

from rig_ros.core.learner import Learner, LearnerConfig, LearnerVAEConfig
from rig_ros.core.policy_runtime import TransitionRecord
from rig_ros.core.td3 import TD3Config
from rig_ros.core.vae import ConvVAE, encode_images, VAETrainer

LATENT_DIM = 16
EPISODE_LENGTH = 50
FIGURES = ('td3_updates_per_s', 'practice_steps_per_s', 'vae_steps_per_s',
           'encode_one_frames_per_s', 'encode_batch_frames_per_s')


def rate(function: Callable[[], int], minimum_s: float) -> float:
    """Call `function` (returns work done) until `minimum_s` passed; return work per second."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < minimum_s or done == 0:
        work = function()
        if work == 0:
            raise RuntimeError('the work ran out before the time did: use fewer --seconds')
        done += work
    return done / elapsed


def synchronised(device: str, function: Callable[[], int]) -> Callable[[], int]:
    """Wrap `function` to wait for the device's queued kernels: the timing sees all the work."""
    def call() -> int:
        done = function()
        if device == 'cuda':
            torch.cuda.synchronize()
        return done
    return call


def filled_learner(device: str, transitions: int, rng: np.random.Generator) -> Learner:
    """Return a learner of RIG's sizes on `device`, `transitions` random ones stored.

    Learning from the first: `updates_per_step` (4) updates are owed per stored transition.
    """
    learner = Learner(LearnerConfig(
        latent_dim=LATENT_DIM, vae=LearnerVAEConfig(latent_dim=LATENT_DIM), device=device,
        td3=TD3Config(learning_starts=0), replay_capacity=20_000, broadcast_every=100,
        checkpoint_every=0, run_dir='', tensorboard=False))
    for episode_id in range(transitions // EPISODE_LENGTH):
        latents = rng.standard_normal((EPISODE_LENGTH + 1, LATENT_DIM)).astype(np.float32)
        goal = rng.standard_normal(LATENT_DIM).astype(np.float32)
        for t in range(EPISODE_LENGTH):
            learner.ingest('robot_0', TransitionRecord(
                episode_id, t, latents[t], rng.uniform(-1, 1, 2).astype(np.float32),
                latents[t + 1], goal, t == EPISODE_LENGTH - 1, 0, float(t)))
    return learner


def counted(function: Callable[[], object], work: int) -> Callable[[], int]:
    """Wrap `function` to return `work` (the frames or steps one call does) for `rate`."""
    def call() -> int:
        function()
        return work
    return call


def td3_updates(learner: Learner, count: int) -> Callable[[], int]:
    """`count` owed updates, broadcasting when due, as the learner node's loop does."""
    def work() -> int:
        done = learner.train(count)
        if learner.broadcast_due():
            learner.policy_weights()
        return done
    return work


def measure(device: str, minimum_s: float, rng: np.random.Generator) -> dict[str, float]:
    """Every figure of one device."""
    learner = filled_learner(device, 5_000, rng)
    updates = synchronised(device, td3_updates(learner, 10))
    updates()  # first call: allocations, kernel choice
    td3_rate = rate(updates, minimum_s)

    vae = ConvVAE(LearnerVAEConfig(latent_dim=LATENT_DIM)).to(device)
    trainer = VAETrainer(vae)
    frames = rng.integers(0, 256, (512, 48, 48, 3), dtype=np.uint8)
    batch = frames[:trainer.config.batch_size]
    vae_step = synchronised(device, counted(lambda: trainer.train_step(batch), 1))
    vae_step()
    vae_rate = rate(vae_step, minimum_s)
    one = synchronised(device, counted(lambda: encode_images(vae, frames[:1]), 1))
    one()
    everything = synchronised(device, counted(lambda: encode_images(vae, frames), len(frames)))
    everything()
    return {'td3_updates_per_s': td3_rate,
            'practice_steps_per_s': td3_rate / learner.config.td3.updates_per_step,
            'vae_steps_per_s': vae_rate,
            'encode_one_frames_per_s': rate(one, minimum_s),
            'encode_batch_frames_per_s': rate(everything, minimum_s)}


def compare(measured: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flatten to `<figure>_<device>`; add `cuda_over_cpu1_<figure>` where both were run."""
    result = {f'{figure}_{device}': round(value, 1)
              for device, figures in measured.items() for figure, value in figures.items()}
    if 'cuda' in measured and 'cpu1' in measured:
        for figure in FIGURES:
            result[f'cuda_over_cpu1_{figure}'] = round(
                measured['cuda'][figure] / measured['cpu1'][figure], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='0.3 s a figure (~10 s in all)')
    parser.add_argument('--seconds', type=float, default=3.0, help='time per figure')
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f'--seconds must be > 0, got {args.seconds}')
    minimum_s = 0.3 if args.quick else args.seconds
    cores = os.cpu_count() or 1
    runs = {'cpu1': ('cpu', 1)}
    if cores > 1:
        runs[f'cpu{cores}'] = ('cpu', cores)
    if torch.cuda.is_available():
        runs['cuda'] = ('cuda', 1)
    measured = {}
    for name, (device, threads) in runs.items():
        torch.set_num_threads(threads)
        measured[name] = measure(device, minimum_s, np.random.default_rng(0))
        figures = measured[name]
        print(f'{name:6s}: {figures["td3_updates_per_s"]:8.1f} TD3 updates/s '
              f'({figures["practice_steps_per_s"]:.1f} practice steps/s at 4 per step), '
              f'{figures["vae_steps_per_s"]:7.1f} VAE steps/s, encode '
              f'{figures["encode_one_frames_per_s"]:7.1f} frames/s one by one, '
              f'{figures["encode_batch_frames_per_s"]:8.1f} in batches of 512', flush=True)
    result = compare(measured)
    result.update(devices=list(measured), seconds_per_figure=minimum_s, cpu_cores=cores,
                  gpu=torch.cuda.get_device_name() if 'cuda' in measured else None,
                  torch=torch.__version__)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
