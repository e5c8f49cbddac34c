"""Objects several test files build: untrained VAEs, checkpoints, learners, loaded scripts.

Scripts outside the package (launch files, benchmarks) are loaded as modules by path.
Imported by name (`rig_ros/test` is on pytest's `pythonpath`); the `vae_checkpoint` fixture
in `rig_ros/test/conftest.py` is the usual way to get a checkpoint file.
"""

import dataclasses
import importlib.util
import pathlib
import sys
import types
from typing import Optional

import numpy as np
import torch

from rig_ros.core.checkpoints import save_checkpoint
from rig_ros.core.learner import Learner, LearnerConfig
from rig_ros.core.policy_runtime import TransitionRecord
from rig_ros.core.td3 import TD3Config
from rig_ros.core.vae import ConvVAE, VAEConfig


def untrained_vae(seed: int = 0, latent_dim: int = 4, image_size: int = 48) -> ConvVAE:
    """Return a freshly initialised VAE in eval mode, the same for the same arguments."""
    torch.manual_seed(seed)
    return ConvVAE(VAEConfig(image_size=image_size, latent_dim=latent_dim)).eval()


def save_vae(path: pathlib.Path, vae: ConvVAE,
             metadata: Optional[dict] = None) -> pathlib.Path:
    """Write `vae` as a VAE checkpoint (module 'vae', its config, `metadata`); return `path`."""
    save_checkpoint(path, {'vae': vae.state_dict()}, {}, dataclasses.asdict(vae.config),
                    metadata)
    return path


def make_learner(updates_per_step: int = 1, **overrides) -> Learner:
    """Return a small learner: 16x16 networks, batches of 8, learning from the 10th transition.

    Weights every 5 updates, no checkpoints, no run directory; `overrides` are LearnerConfig
    fields (`td3` replaces the whole TD3Config).
    """
    td3 = TD3Config(hidden_sizes=(16, 16), batch_size=8, learning_starts=10,
                    updates_per_step=updates_per_step)
    values = {'td3': td3, 'broadcast_every': 5, 'checkpoint_every': 0, 'run_dir': '',
              'replay_capacity': 1000, **overrides}
    return Learner(LearnerConfig(**values))


def episode(episode_id: int, length: int, seed: int = 0,
            dim: int = 4) -> list[TransitionRecord]:
    """Return a chained episode: each observation is the previous next observation."""
    rng = np.random.default_rng(seed * 1000 + episode_id)
    latents = rng.standard_normal((length + 1, dim)).astype(np.float32)
    goal = rng.standard_normal(dim).astype(np.float32)
    return [TransitionRecord(episode_id, t, latents[t], rng.uniform(-1, 1, 2).astype(np.float32),
                             latents[t + 1], goal, t == length - 1, 0, float(t))
            for t in range(length)]


def load_script(path: pathlib.Path, name: str) -> types.ModuleType:
    """Import the Python file at `path` as module `name`, afresh on every call.

    Afresh: a launch file binds whatever `launch` modules sys.modules holds when it runs (a
    test's stand-ins). Registered in sys.modules before it runs: dataclasses of a module with
    postponed annotations look their module up there.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f'cannot load {path}'
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def puck_table_to_image(xy: np.ndarray, size: int = 48) -> np.ndarray:
    """Return the pixel (column, row) of table (x, y) metres: a made-up oblique camera."""
    x, y = xy
    scale = size / 48
    row = (8 + (y - 0.45) * 90 + 40 * (y - 0.45) ** 2) * scale
    column = (24 + x * (80 - 40 * (y - 0.45))) * scale
    return np.array([column, row])


def puck_frame(xy: Optional[np.ndarray], size: int = 48) -> np.ndarray:
    """Return a frame of brown table, a red arm stripe and a blue puck at `xy` (None: covered).

    The puck is a disc of radius size / 24 px, where `puck_table_to_image` puts it.
    """
    frame = np.zeros((size, size, 3), np.uint8)
    frame[...] = (120, 80, 50)
    frame[:, size * 30 // 48:size * 34 // 48] = (200, 30, 30)
    if xy is not None:
        column, row = puck_table_to_image(np.asarray(xy, dtype=float), size)
        rows, columns = np.mgrid[:size, :size]
        disc = (rows + 0.5 - row) ** 2 + (columns + 0.5 - column) ** 2 <= (size / 24) ** 2
        frame[disc] = (20, 40, 220)
    return frame


def puck_tracker_file(directory: pathlib.Path, size: int = 84) -> str:
    """Write a puck tracker calibration of `puck_frame`'s camera to `directory`; its path."""
    from rig_ros.core.pushes import calibration_states
    from rig_ros.core.tracker import PuckTracker
    places = calibration_states('pusher')[:, 2:4]
    tracker = PuckTracker()
    error = tracker.calibrate(np.stack([puck_frame(xy, size) for xy in places]), places)
    tracker.save(directory / 'tracker.json', error)
    return str(directory / 'tracker.json')
