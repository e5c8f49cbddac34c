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
