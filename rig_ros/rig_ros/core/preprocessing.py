"""Camera frames to the small RGB squares the VAE sees: decode, convert, crop, resize.

Everything here works on numpy arrays; ROS nodes turn `sensor_msgs/Image` fields into arrays
with `image_from_buffer` at the edge (cv_bridge semantics without needing cv_bridge).
"""

from dataclasses import dataclass
import math
from numbers import Integral, Real
from typing import Optional

import cv2
import numpy as np


@dataclass(frozen=True)
class _Encoding:
    channels: int
    dtype: np.dtype
    # Channel indices that give R, G, B (mono images are repeated instead).
    rgb_order: tuple[int, ...]


_U8 = np.dtype(np.uint8)
_U16 = np.dtype(np.uint16)
ENCODINGS: dict[str, _Encoding] = {
    'rgb8': _Encoding(3, _U8, (0, 1, 2)),
    'bgr8': _Encoding(3, _U8, (2, 1, 0)),
    'rgba8': _Encoding(4, _U8, (0, 1, 2)),
    'bgra8': _Encoding(4, _U8, (2, 1, 0)),
    'mono8': _Encoding(1, _U8, (0, 0, 0)),
    '8UC1': _Encoding(1, _U8, (0, 0, 0)),
    'rgb16': _Encoding(3, _U16, (0, 1, 2)),
    'bgr16': _Encoding(3, _U16, (2, 1, 0)),
    'mono16': _Encoding(1, _U16, (0, 0, 0)),
    '16UC1': _Encoding(1, _U16, (0, 0, 0)),
}


def _lookup(encoding: str) -> _Encoding:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(
            f'unsupported image encoding {encoding!r}; expected one of {sorted(ENCODINGS)}'
        ) from None


def _check_layout(image: np.ndarray, encoding: str) -> _Encoding:
    """Check shape and dtype against the encoding; mono images may be HxW or HxWx1."""
    spec = _lookup(encoding)
    if not isinstance(image, np.ndarray):
        raise ValueError(f'expected a numpy array, got {type(image).__name__}')
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f'expected a non-empty HxW or HxWxC image, got shape {image.shape}')
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != spec.channels:
        raise ValueError(
            f'{encoding} has {spec.channels} channel(s) but the image has shape {image.shape}'
        )
    if image.dtype != spec.dtype:
        raise ValueError(f'{encoding} needs dtype {spec.dtype}, got {image.dtype}')
    return spec


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a frame in a ROS image encoding to uint8 HxWx3 RGB.

    16-bit images are scaled from the full 16-bit range to 8 bits (65535 -> 255), as
    cv_bridge does; depth-like `16UC1` frames are treated the same way for lack of a range.
    Floating-point frames are accepted for 8-bit encodings when they hold values in [0, 1].
    """
    if isinstance(image, np.ndarray) and image.dtype.kind == 'f':
        image = _float_to_uint8(image, encoding)
    spec = _check_layout(image, encoding)
    if image.ndim == 2:
        image = image[:, :, None]
    rgb = image[:, :, list(spec.rgb_order)]
    if spec.dtype == _U16:
        # 65535 / 257 == 255 exactly, so the full range maps onto the full range.
        rgb = np.rint(rgb / 257.0).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _float_to_uint8(image: np.ndarray, encoding: str) -> np.ndarray:
    if _lookup(encoding).dtype != _U8:
        raise ValueError(f'{encoding} needs dtype uint16, got {image.dtype}')
    if image.size and not np.isfinite(image).all():
        raise ValueError('image contains NaN or infinite values')
    if image.size and (image.min() < 0.0 or image.max() > 1.0):
        raise ValueError(
            f'float images must lie in [0, 1], got [{image.min():.3g}, {image.max():.3g}]'
        )
    return np.rint(image * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class CropBox:
    """A crop window of the raw frame.

    In pixels by default; with `fractional=True` every field is a fraction of the frame's
    height (top, height) or width (left, width), so one config fits every camera resolution.
    """

    top: float
    left: float
    height: float
    width: float
    fractional: bool = False

    def __post_init__(self) -> None:
        values = (self.top, self.left, self.height, self.width)
        if not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
            raise ValueError(f'crop fields must be numbers, got {values}')
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f'crop fields must be finite, got {values}')
        if min(self.top, self.left) < 0 or min(self.height, self.width) <= 0:
            raise ValueError(f'crop needs top, left >= 0 and height, width > 0: {self}')
        if self.fractional:
            if self.top + self.height > 1 + 1e-9 or self.left + self.width > 1 + 1e-9:
                raise ValueError(f'fractional crop must stay inside [0, 1]: {self}')
        elif not all(float(v).is_integer() for v in values):
            # Whole floats are fine: ROS parameters and YAML often say 100.0 for 100.
            raise ValueError(f'pixel crop fields must be whole numbers, got {values}')

    @classmethod
    def from_fractions(cls, top: float, left: float, height: float, width: float) -> 'CropBox':
        """Build a resolution-independent crop from fractions of the frame size."""
        return cls(top, left, height, width, fractional=True)

    def pixels(self, frame_height: int, frame_width: int) -> tuple[int, int, int, int]:
        """Return (top, left, height, width) in pixels, checked against the frame size."""
        if self.fractional:
            top = round(self.top * frame_height)
            left = round(self.left * frame_width)
            # Round both edges so adjacent crops tile; keep at least one pixel.
            height = max(round((self.top + self.height) * frame_height) - top, 1)
            width = max(round((self.left + self.width) * frame_width) - left, 1)
        else:
            top, left = int(self.top), int(self.left)
            height, width = int(self.height), int(self.width)
        if top + height > frame_height or left + width > frame_width:
            raise ValueError(
                f'crop rows {top}:{top + height}, cols {left}:{left + width} fall outside '
                f'the {frame_height}x{frame_width} frame'
            )
        return top, left, height, width


@dataclass(frozen=True)
class PreprocessConfig:
    """How camera frames become VAE inputs.

    crop: window of the raw frame to keep; None keeps the whole frame (then a non-square
        frame is squashed into the square output).
    size: side of the square output in pixels (84 or 48 for the RIG VAEs).
    """

    crop: Optional[CropBox] = None
    size: int = 84

    def __post_init__(self) -> None:
        if self.crop is not None and not isinstance(self.crop, CropBox):
            raise ValueError(f'crop must be a CropBox or None, got {type(self.crop).__name__}')
        if not isinstance(self.size, Integral) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f'size must be a positive integer, got {self.size!r}')


def preprocess(image: np.ndarray, config: PreprocessConfig,
               encoding: str = 'rgb8') -> np.ndarray:
    """Convert to RGB, crop, and resize a frame to a uint8 size x size x 3 array."""
    if (isinstance(image, np.ndarray) and image.dtype == _U8
            and _check_layout(image, encoding).dtype == _U8):
        # 8-bit frames are cropped and resized in their own channel layout and converted
        # afterwards (every step works per channel: the same pixels). Converting a 640x480
        # frame first copied it channel by channel: 2-8 ms on a loaded machine (measured).
        return to_rgb(_crop_and_resize(image, config), encoding)
    return _crop_and_resize(to_rgb(image, encoding), config)


def _crop_and_resize(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Crop and resize an HxW or HxWxC array to size x size (x C, mono stays HxW)."""
    if config.crop is not None:
        top, left, height, width = config.crop.pixels(*image.shape[:2])
        image = image[top:top + height, left:left + width]
    height, width = image.shape[:2]
    if (height, width) == (config.size, config.size):
        return np.ascontiguousarray(image)
    # Area averaging avoids aliasing when shrinking; it blurs badly when enlarging.
    shrinking = height >= config.size and width >= config.size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (config.size, config.size), interpolation=interpolation)


def image_from_buffer(data: bytes, height: int, width: int, encoding: str, step: int,
                      is_bigendian: bool, copy: bool = True) -> np.ndarray:
    """Decode `sensor_msgs/Image` fields into an HxW (mono) or HxWxC array.

    Follows cv_bridge: rows are `step` bytes apart (padding is dropped), 16-bit samples are
    read in the message's byte order and returned in native order. The result owns its memory
    unless `copy` is false: then 8-bit data without row padding come back as a read-only view
    of `data` (a 640x480 rgb8 frame's copy cost 0.13 ms per frame in camera_pipeline, which
    only reads it); anything else is still copied.
    """
    spec = _lookup(encoding)
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got {height}x{width}')
    row_bytes = width * spec.channels * spec.dtype.itemsize
    if step < row_bytes:
        raise ValueError(f'step {step} is shorter than a {encoding} row of {row_bytes} bytes')
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ValueError(
            f'{buffer.size} bytes of data is too short for {height} rows of step {step}'
        )
    rows = buffer[:step * height].reshape(height, step)[:, :row_bytes]
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    if not copy and spec.dtype.itemsize == 1 and step == row_bytes:
        view = rows.reshape(shape)
        view.flags.writeable = False  # the message's bytes: never written through
        return view
    wire_dtype = spec.dtype.newbyteorder('>' if is_bigendian else '<')
    image = np.ascontiguousarray(rows).view(wire_dtype).astype(spec.dtype)
    return image.reshape(shape)


def image_to_buffer(image: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """Encode an array as `sensor_msgs/Image` data; returns (data, step), little-endian."""
    spec = _check_layout(image, encoding)
    little = np.ascontiguousarray(image, dtype=spec.dtype.newbyteorder('<'))
    return little.tobytes(), image.shape[1] * spec.channels * spec.dtype.itemsize
