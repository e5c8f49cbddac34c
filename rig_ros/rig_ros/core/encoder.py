"""The VAE as the graph's nodes hold it: versioned weights, preprocessing, encode and decode.

Weights come from a checkpoint file (`save_checkpoint` with a module 'vae', e.g. the pipeline's
`vae.safetensors`) or from a weights message: `vae_weights_payload` gives the message's
`config_json` and `safetensors` fields (the VAE's flat `state_dict` through `serialize_state`,
the `VAEConfig` as JSON). A payload or file that does not fit is refused with a `WeightsError`
and the weights in use stay. The first weights fix the latent space (image size and latent
size); later weights must keep it, since goals and replay data live in it.
"""

from dataclasses import asdict, dataclass, fields
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch

from rig_ros.core.checkpoints import (
    CheckpointError, deserialize_state, load_checkpoint, serialize_state)
from rig_ros.core.preprocessing import CropBox, preprocess, PreprocessConfig
from rig_ros.core.vae import ConvVAE, decode_latents, encode_images, VAEConfig
from rig_ros.interfaces.names import VAE_MODEL

VAE_CHECKPOINT_FILE = 'vae.safetensors'  # what a run directory holds
# Metadata of a VAE checkpoint: the encoder's mean posterior variance per latent axis over the
# pretraining images, the metric of the Mahalanobis reward (core.rewards).
LATENT_VARIANCE_KEY = 'latent_variance'


class WeightsError(ValueError):
    """Weights that cannot be used: corrupt, of another architecture, or not finite."""


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of the vae_encoder node.

    vae_checkpoint: VAE checkpoint file, or a run directory holding vae.safetensors; unset:
        wait for the learner's weights broadcast.
    request_crop: crop applied to images sent to the encode service before resizing (set it
        like camera_pipeline's crop to encode raw camera frames); unset: the whole image.
        Frames on rig/image are already cropped and are only resized.
    torch_threads: CPU threads for PyTorch; the machine's cores are shared by the graph.
    reconstruction_period_s: publish the VAE's reconstruction of the current frame on
        rig/reconstruction at most this often (seconds, for viewers); 0: never.
    """

    vae_checkpoint: Optional[str] = None
    request_crop: Optional[CropBox] = None
    torch_threads: int = 1
    reconstruction_period_s: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.torch_threads, int) or self.torch_threads < 1:
            raise ValueError(f'torch_threads must be a positive integer, '
                             f'got {self.torch_threads!r}')
        if not self.reconstruction_period_s >= 0 or self.reconstruction_period_s == float('inf'):
            raise ValueError(f'reconstruction_period_s must be >= 0 seconds (0: off), '
                             f'got {self.reconstruction_period_s!r}')


def vae_config_from_dict(values: Mapping[str, Any]) -> VAEConfig:
    """Build a VAEConfig from a checkpoint's or message's config (a pipeline config's 'vae')."""
    if isinstance(values.get('vae'), Mapping):
        values = values['vae']
    known = {f.name for f in fields(VAEConfig)}
    try:
        return VAEConfig(**{key: value for key, value in values.items() if key in known})
    except (TypeError, ValueError) as error:
        raise WeightsError(f'invalid VAE config: {error}') from None


def vae_weights_payload(vae: ConvVAE) -> tuple[str, bytes]:
    """Return (config_json, safetensors) for a `rig_msgs/Weights` message of `vae`."""
    config = asdict(vae.config)
    return json.dumps(config), serialize_state(vae.state_dict(), config)


def saved_latent_variance(metadata: Mapping[str, Any],
                          latent_dim: int) -> Optional[np.ndarray]:
    """Return a VAE checkpoint's latent variance (LATENT_VARIANCE_KEY), None if it has none.

    Raises WeightsError when it is not `latent_dim` positive numbers.
    """
    values = metadata.get(LATENT_VARIANCE_KEY)
    if values is None:
        return None
    try:
        variance = np.asarray(values, np.float32)
    except (TypeError, ValueError):
        variance = np.zeros(0, np.float32)
    if variance.shape != (latent_dim,) or not (np.isfinite(variance).all()
                                               and (variance > 0).all()):
        raise WeightsError(f'{LATENT_VARIANCE_KEY} must be {latent_dim} positive numbers, '
                           f'got {values!r}')
    return variance


def resolve_checkpoint(path: Union[str, os.PathLike]) -> Path:
    """Return the checkpoint file: `path` itself, or `vae.safetensors` in a directory."""
    path = Path(path).expanduser()
    return path / VAE_CHECKPOINT_FILE if path.is_dir() else path


class LatentEncoder:
    """A VAE with a version: images of any size and encoding in, latents out, and back."""

    def __init__(self) -> None:
        self._vae: Optional[ConvVAE] = None
        self._version = 0
        self._source = ''

    @property
    def ready(self) -> bool:
        """True once weights are loaded."""
        return self._vae is not None

    @property
    def version(self) -> int:
        """Version of the weights in use (a checkpoint file's metadata 'version', else 0)."""
        return self._version

    @property
    def source(self) -> str:
        """Where the weights in use came from."""
        return self._source

    @property
    def config(self) -> VAEConfig:
        """Config of the VAE in use; raises RuntimeError before weights are loaded."""
        return self._require().config

    def _require(self) -> ConvVAE:
        if self._vae is None:
            raise RuntimeError('no VAE weights loaded yet')
        return self._vae

    def load_checkpoint(self, path: Union[str, os.PathLike]) -> None:
        """Load the module 'vae' of a checkpoint file (or a run directory's vae.safetensors)."""
        file = resolve_checkpoint(path)
        try:
            checkpoint = load_checkpoint(file)
        except (OSError, CheckpointError) as error:
            raise WeightsError(f'cannot read VAE checkpoint {str(file)!r}: {error}') from None
        if VAE_MODEL not in checkpoint.modules:
            raise WeightsError(f'checkpoint {str(file)!r} has no {VAE_MODEL!r} module '
                               f'(it has {sorted(checkpoint.modules)})')
        version = checkpoint.metadata.get('version', 0)
        self._install(vae_config_from_dict(checkpoint.config), checkpoint.modules['vae'],
                      int(version) if isinstance(version, int) else 0, f'file {file}')

    def load_payload(self, data: Union[bytes, bytearray, memoryview], version: int,
                     config_json: str = '') -> None:
        """Load weights from a message's safetensors bytes and config JSON (empty: keep)."""
        try:
            state, blob_config, _ = deserialize_state(data)
        except CheckpointError as error:
            raise WeightsError(f'corrupt VAE weights: {error}') from None
        if config_json:
            try:
                values = json.loads(config_json)
            except ValueError as error:
                raise WeightsError(f'config_json is not JSON: {error}') from None
            if not isinstance(values, dict):
                raise WeightsError('config_json must be a JSON object')
            config = vae_config_from_dict(values)
        elif blob_config:
            config = vae_config_from_dict(blob_config)
        elif self._vae is not None:
            config = self._vae.config
        else:
            raise WeightsError('VAE weights without a config, and no VAE to take it from')
        if set(state) == {VAE_MODEL} and isinstance(state[VAE_MODEL], dict):
            state = state[VAE_MODEL]  # {'vae': state_dict} as in checkpoints
        self._install(config, state, version, f'weights message v{version}')

    def _install(self, config: VAEConfig, state: Mapping[str, Any], version: int,
                 source: str) -> None:
        current = self._vae.config if self._vae is not None else None
        if current is not None and (config.image_size, config.latent_dim) != (
                current.image_size, current.latent_dim):
            raise WeightsError(
                f'{source} is a {config.image_size}x{config.image_size} VAE with '
                f'{config.latent_dim} latents, but the one in use is '
                f'{current.image_size}x{current.image_size} with {current.latent_dim}: '
                'goals and observations would change meaning')
        vae = ConvVAE(config)
        try:
            vae.load_state_dict(dict(state), strict=True)
        except (RuntimeError, TypeError, ValueError) as error:
            text = ' '.join(str(error).split())
            raise WeightsError(f'{source} does not fit the VAE architecture: '
                               f'{text[:500]}') from None
        if not all(torch.isfinite(tensor).all() for tensor in vae.state_dict().values()
                   if tensor.is_floating_point()):
            raise WeightsError(f'{source} holds NaN or infinite values')
        vae.eval()
        self._vae, self._version, self._source = vae, int(version), source

    def preprocess(self, image: np.ndarray, encoding: str = 'rgb8',
                   crop: Optional[CropBox] = None) -> np.ndarray:
        """Convert, crop and resize an image to the VAE's uint8 input (ValueError if bad)."""
        size = self._require().config.image_size
        return preprocess(image, PreprocessConfig(crop=crop, size=size), encoding)

    def encode(self, image: np.ndarray, encoding: str = 'rgb8',
               crop: Optional[CropBox] = None) -> tuple[np.ndarray, np.ndarray]:
        """Return float32 (mean, log-variance) [latent_dim] of one image of any size."""
        vae = self._require()
        mean, logvar = encode_images(vae, self.preprocess(image, encoding, crop)[None])
        return mean[0], logvar[0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Return the uint8 RGB image [S, S, 3] the VAE decodes from one latent."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 1:
            raise ValueError(f'expected one latent vector, got shape {z.shape}')
        return decode_latents(self._require(), z[None])[0]
