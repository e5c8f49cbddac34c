"""A puck tracker from the camera alone: a colour blob, mapped to the table by a calibration.

Aimed exploration pushes (`core.pushes`) need the puck's position; a robot has no simulator to
ask. The pusher's puck is the one strongly coloured thing on the table (blue on wood, beside a
red arm): the pixels where one colour channel exceeds both others by `margin` are the puck,
their centroid its image position. A calibration maps image positions (as fractions of the
frame's width and height, so any frame size works) to table (x, y) metres with a quadratic
least-squares fit on frames of the puck at known places (on a robot: the puck set on a few
marked spots once; in the simulator: rendered there). The camera looks down at an angle, so
the map is not linear; a quadratic one is within a few millimetres over the pusher's table.
A puck the arm covers (fewer than `min_pixels` pixels) is not located: None, never a guess.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from rig_ros.core.files import atomic_write_text

CHANNELS = ('red', 'green', 'blue')
FILE_FORMAT = 'rig_ros puck tracker 1'
"""The `format` of a calibration file (JSON: format, config, weights, fit_error_m)."""
QUADRATIC_TERMS = 6
"""1, u, v, u^2, uv, v^2: a calibration needs at least this many located frames."""


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """What the tracked object looks like in an RGB frame."""

    colour: str = 'blue'
    """The channel the object is brightest in: 'red', 'green' or 'blue'."""
    margin: int = 30
    """How far (0-255) that channel must exceed each other channel in an object pixel."""
    min_pixels: int = 3
    """Fewer object pixels than this: the object is covered or out of view (not located)."""

    def __post_init__(self) -> None:
        """Reject bad values, naming the field."""
        if self.colour not in CHANNELS:
            raise ValueError(f'colour must be one of {CHANNELS}, got {self.colour!r}')
        if not 0 <= int(self.margin) < 255:
            raise ValueError(f'margin must be in [0, 255), got {self.margin!r}')
        if int(self.min_pixels) < 1:
            raise ValueError(f'min_pixels must be positive, got {self.min_pixels!r}')


def _features(image_positions: np.ndarray) -> np.ndarray:
    u, v = np.asarray(image_positions, dtype=float).reshape(-1, 2).T
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)


class PuckTracker:
    """Locates one coloured object in RGB frames, in table metres once calibrated."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.weights: Optional[np.ndarray] = None  # (QUADRATIC_TERMS, 2) once calibrated

    def image_position(self, frame: np.ndarray) -> Optional[np.ndarray]:
        """Return the object's centroid as fractions (column, row) of the frame, or None."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f'need an RGB uint8 frame (H, W, 3), got {frame.dtype} '
                             f'{frame.shape}')
        pixels = frame.astype(np.int16)
        channel = CHANNELS.index(self.config.colour)
        others = [index for index in range(3) if index != channel]
        mask = ((pixels[..., channel] > pixels[..., others[0]] + self.config.margin)
                & (pixels[..., channel] > pixels[..., others[1]] + self.config.margin))
        rows, columns = np.nonzero(mask)
        if len(rows) < self.config.min_pixels:
            return None
        # Pixel centres, as fractions of the frame: the same calibration at any frame size.
        return np.array([(columns.mean() + 0.5) / frame.shape[1],
                         (rows.mean() + 0.5) / frame.shape[0]])

    def calibrate(self, frames: np.ndarray, positions: np.ndarray) -> float:
        """Fit the image-to-table map on frames of the object at known (x, y); return its error.

        Frames where the object is not located are left out; fewer than QUADRATIC_TERMS located
        frames (or places on one line) cannot fix the map: ValueError. Returns the largest
        distance (m) between a calibration position and where the fitted map puts it.
        """
        located = [(self.image_position(frame), position)
                   for frame, position in zip(frames, np.asarray(positions, dtype=float))]
        located = [(image, position) for image, position in located if image is not None]
        if len(located) < QUADRATIC_TERMS:
            raise ValueError(f'the object was located in {len(located)} calibration frames; '
                             f'need at least {QUADRATIC_TERMS}')
        features = _features(np.stack([image for image, _ in located]))
        targets = np.stack([position for _, position in located])
        spread = np.linalg.svd(targets - targets.mean(axis=0), compute_uv=False)
        if spread[-1] < 1e-3 or np.linalg.matrix_rank(features) < QUADRATIC_TERMS:
            raise ValueError('the calibration places do not fix a quadratic map: spread them '
                             'over the table, not on one line')
        self.weights = np.linalg.lstsq(features, targets, rcond=None)[0]
        return float(np.linalg.norm(features @ self.weights - targets, axis=1).max())

    def save(self, path: str | os.PathLike, fit_error_m: float) -> None:
        """Write the calibration as JSON (atomic): the colour settings and the map."""
        if self.weights is None:
            raise RuntimeError('PuckTracker.calibrate must run before save')
        atomic_write_text(path, json.dumps({
            'format': FILE_FORMAT, 'config': dataclasses.asdict(self.config),
            'weights': self.weights.tolist(), 'fit_error_m': float(fit_error_m)}, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'PuckTracker':
        """Read a calibration file; ValueError naming the file when it is not one."""
        try:
            with open(path, encoding='utf-8') as stream:
                saved = json.load(stream)
            if saved.get('format') != FILE_FORMAT:
                raise ValueError(f"format {saved.get('format')!r}, not {FILE_FORMAT!r}")
            tracker = cls(TrackerConfig(**saved['config']))
            weights = np.asarray(saved['weights'], dtype=float)
            if weights.shape != (QUADRATIC_TERMS, 2) or not np.all(np.isfinite(weights)):
                raise ValueError(f'weights of shape {weights.shape}, not ({QUADRATIC_TERMS}, 2) '
                                 'finite numbers')
        except (OSError, KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f'{path} is not a puck tracker calibration: {error}') from None
        tracker.weights = weights
        return tracker

    def locate(self, frame: np.ndarray) -> Optional[np.ndarray]:
        """Return the object's table (x, y) in metres, or None when it is not seen."""
        if self.weights is None:
            raise RuntimeError('PuckTracker.calibrate must run before locate')
        image = self.image_position(frame)
        return None if image is None else (_features(image) @ self.weights)[0]
