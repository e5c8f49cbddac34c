"""Objects several test files build: untrained VAEs and their checkpoints.

Imported by name (`rig_ros/test` is on pytest's `pythonpath`); the `vae_checkpoint` fixture
in `rig_ros/test/conftest.py` is the usual way to get a checkpoint file.
"""

import dataclasses
import pathlib
from typing import Optional

import torch

from rig_ros.core.checkpoints import save_checkpoint
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
