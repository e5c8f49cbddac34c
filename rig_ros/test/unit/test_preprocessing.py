"""Tests of frame decoding, colour conversion, cropping and resizing."""

import array

import numpy as np
import pytest

from rig_ros.core.preprocessing import (
    CropBox, image_from_buffer, image_to_buffer, preprocess, PreprocessConfig, to_rgb)

RED = (255, 0, 0)


def _frame(height=60, width=80):
    """Make an RGB frame with distinct per-channel ramps, so any channel swap shows."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 4 % 256, cols * 3 % 256, (rows + cols) % 256], -1).astype(np.uint8)


def _as(encoding, rgb):
    """Express an RGB frame in another encoding (the inverse of to_rgb for 8-bit ones)."""
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    return {
        'rgb8': rgb,
        'bgr8': rgb[:, :, ::-1],
        'rgba8': np.concatenate([rgb, alpha], -1),
        'bgra8': np.concatenate([rgb[:, :, ::-1], alpha], -1),
    }[encoding]


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_colour_encodings_give_rgb(encoding):
    rgb = _frame()
    out = to_rgb(np.ascontiguousarray(_as(encoding, rgb)), encoding)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_bgr8_red_pixel_becomes_rgb_red():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[1, 2] = (0, 0, 255)
    assert tuple(to_rgb(bgr, 'bgr8')[1, 2]) == RED


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
@pytest.mark.parametrize('shape', [(5, 6), (5, 6, 1)])
def test_mono8_is_repeated_into_three_channels(encoding, shape):
    mono = np.arange(30, dtype=np.uint8).reshape(shape)
    out = to_rgb(mono, encoding)
    assert out.shape == (5, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], mono.reshape(5, 6))


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
def test_16_bit_mono_is_scaled_to_full_8_bit_range(encoding):
    mono = np.array([[0, 257, 32896, 65535]], np.uint16)
    out = to_rgb(mono, encoding)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)


def test_16_bit_colour_is_scaled_and_reordered():
    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[..., 2] = 65535
    assert tuple(to_rgb(bgr16, 'bgr16')[0, 0]) == RED
    assert tuple(to_rgb(bgr16[..., ::-1].copy(), 'rgb16')[0, 0]) == RED


def test_float_images_in_unit_range_are_accepted():
    out = to_rgb(np.full((3, 3, 3), 0.5, np.float32), 'rgb8')
    assert out.dtype == np.uint8 and (out == 128).all()


@pytest.mark.parametrize('image, encoding, message', [
    (np.zeros((4, 4, 3), np.uint8), 'yuv422', 'unsupported image encoding'),
    (np.zeros((4, 4, 4), np.uint8), 'rgb8', 'channel'),
    (np.zeros((4, 4), np.uint8), 'bgr8', 'channel'),
    (np.zeros((4, 4, 3), np.uint8), 'mono8', 'channel'),
    (np.zeros((4, 4, 3), np.uint16), 'rgb8', 'dtype'),
    (np.zeros((4, 4), np.uint8), 'mono16', 'dtype'),
    (np.zeros((4, 4, 3), np.int64), 'rgb8', 'dtype'),
    (np.zeros((0, 4, 3), np.uint8), 'rgb8', 'non-empty'),
    (np.zeros((4,), np.uint8), 'mono8', 'non-empty'),
    (np.full((4, 4, 3), np.nan, np.float32), 'rgb8', 'NaN'),
    (np.full((4, 4, 3), 2.0), 'rgb8', r'\[0, 1\]'),
    ([[1, 2], [3, 4]], 'mono8', 'numpy array'),
])
def test_bad_images_raise_clear_errors(image, encoding, message):
    with pytest.raises(ValueError, match=message):
        to_rgb(image, encoding)


@pytest.mark.parametrize('size', [84, 48, 100])
def test_preprocess_output_size(size):
    out = preprocess(_frame(120, 160), PreprocessConfig(size=size))
    assert out.shape == (size, size, 3) and out.dtype == np.uint8


def test_crop_keeps_a_coloured_square_where_expected():
    # A red 40x40 square at rows 100-139, cols 220-259 of a 480x640 bgr8 frame.
    bgr = np.zeros((480, 640, 3), np.uint8)
    bgr[100:140, 220:260] = (0, 0, 255)
    pixels = CropBox(top=80, left=200, height=160, width=160)
    fractions = CropBox.from_fractions(top=80 / 480, left=200 / 640, height=160 / 480,
                                       width=160 / 640)
    for crop in (pixels, fractions):
        out = preprocess(bgr, PreprocessConfig(crop=crop, size=80), 'bgr8')
        # Halved by the resize: the square covers rows/cols 10-29 of the output.
        np.testing.assert_array_equal(out[10:30, 10:30], np.broadcast_to(RED, (20, 20, 3)))
        assert out[:10].sum() == 0 and out[30:].sum() == 0
        assert out[:, :10].sum() == 0 and out[:, 30:].sum() == 0


def test_whole_float_pixel_crops_are_accepted():
    assert CropBox(10.0, 20, 30.0, 40).pixels(100, 100) == (10, 20, 30, 40)


def test_fractional_crop_scales_with_resolution():
    crop = CropBox.from_fractions(0.25, 0.5, 0.5, 0.25)
    assert crop.pixels(480, 640) == (120, 320, 240, 160)
    assert crop.pixels(240, 320) == (60, 160, 120, 80)


def test_crop_outside_frame_is_rejected():
    with pytest.raises(ValueError, match='outside'):
        preprocess(_frame(60, 80), PreprocessConfig(crop=CropBox(50, 0, 20, 20)))


@pytest.mark.parametrize('kwargs', [
    {'top': -1, 'left': 0, 'height': 10, 'width': 10},
    {'top': 0, 'left': 0, 'height': 0, 'width': 10},
    {'top': 0.5, 'left': 0, 'height': 10, 'width': 10},
    {'top': 0.5, 'left': 0, 'height': 0.6, 'width': 0.2, 'fractional': True},
    {'top': float('nan'), 'left': 0, 'height': 0.6, 'width': 0.2, 'fractional': True},
    {'top': '1', 'left': 0, 'height': 10, 'width': 10},
    {'top': True, 'left': 0, 'height': 10, 'width': 10},
])
def test_invalid_crop_boxes_are_rejected(kwargs):
    with pytest.raises(ValueError):
        CropBox(**kwargs)


@pytest.mark.parametrize('size', [0, -3, 8.5, True])
def test_invalid_output_size_is_rejected(size):
    with pytest.raises(ValueError, match='size'):
        PreprocessConfig(size=size)


def test_buffer_rows_with_step_padding():
    rgb = _frame(5, 7)
    step = 7 * 3 + 11
    padded = np.full((5, step), 99, np.uint8)
    padded[:, :21] = rgb.reshape(5, 21)
    image = image_from_buffer(padded.tobytes(), 5, 7, 'rgb8', step, False)
    np.testing.assert_array_equal(image, rgb)
    assert image.flags.writeable and image.flags.c_contiguous


@pytest.mark.parametrize('is_bigendian', [False, True])
def test_buffer_16_bit_endianness(is_bigendian):
    values = np.array([[1, 256, 4660, 65535]], np.uint16)
    wire = values.astype('>u2' if is_bigendian else '<u2').tobytes()
    image = image_from_buffer(wire, 1, 4, 'mono16', 8, is_bigendian)
    assert image.dtype == np.uint16 and image.shape == (1, 4)
    np.testing.assert_array_equal(image, values)


@pytest.mark.parametrize('encoding, array', [
    ('bgr8', _frame(6, 5)),
    ('mono8', _frame(6, 5)[:, :, 0]),
    ('rgb16', _frame(6, 5).astype(np.uint16) * 250),
    ('16UC1', np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000),
])
def test_buffer_round_trip(encoding, array):
    data, step = image_to_buffer(array, encoding)
    np.testing.assert_array_equal(image_from_buffer(data, 6, 5, encoding, step, False), array)


def test_buffer_accepts_ros_style_uint8_arrays():
    data, step = image_to_buffer(_frame(4, 4), 'rgb8')
    image = image_from_buffer(array.array('B', data), 4, 4, 'rgb8', step, False)
    np.testing.assert_array_equal(image, _frame(4, 4))


def test_buffer_view_without_copy():
    data = bytearray(image_to_buffer(_frame(4, 5), 'rgb8')[0])
    view = image_from_buffer(data, 4, 5, 'rgb8', 15, False, copy=False)
    np.testing.assert_array_equal(view, _frame(4, 5))
    assert not view.flags.writeable  # the message's bytes are never written through
    data[0] = 255 - data[0]  # a view: the frame it shows is the buffer's
    assert view[0, 0, 0] == data[0]
    assert preprocess(view, PreprocessConfig(size=4), 'rgb8').flags.writeable
    # A frame already at the output size is not resized: the output must still be its own.
    square = image_from_buffer(image_to_buffer(_frame(4, 4), 'rgb8')[0], 4, 4, 'rgb8', 12,
                               False, copy=False)
    output = preprocess(square, PreprocessConfig(size=4), 'rgb8')
    assert output.flags.writeable and not np.shares_memory(output, square)


@pytest.mark.parametrize('encoding, step, array', [
    ('rgb8', 7 * 3 + 11, _frame(5, 7)),  # padded rows
    ('mono16', 7 * 2, np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000),  # byte order
])
def test_buffer_copies_what_a_view_cannot_show(encoding, step, array):
    data, row_bytes = image_to_buffer(array, encoding)
    rows = np.zeros((5, step), np.uint8)
    rows[:, :row_bytes] = np.frombuffer(data, np.uint8).reshape(5, row_bytes)
    wire = rows.tobytes()
    image = image_from_buffer(wire, 5, 7, encoding, step, False, copy=False)
    np.testing.assert_array_equal(image, array)
    assert image.flags.writeable and not np.shares_memory(image, np.frombuffer(wire, np.uint8))


@pytest.mark.parametrize('length, step, message', [
    (12 * 3 - 1, 12, 'too short'),
    (100, 11, 'step'),
])
def test_buffer_validation(length, step, message):
    with pytest.raises(ValueError, match=message):
        image_from_buffer(bytes(length), 3, 4, 'rgb8', step, False)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'])
@pytest.mark.parametrize('crop, size', [
    (None, 84), (CropBox(0.1, 0.2, 0.5, 0.4, fractional=True), 48), (CropBox(3, 5, 40, 40), 84)])
def test_8_bit_frames_resized_before_conversion_match_convert_then_resize(encoding, crop, size):
    """The fast path (crop and resize in the frame's own layout) gives the same pixels."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    frame = rgb[:, :, 0].copy() if encoding == 'mono8' else _as(encoding, rgb)
    config = PreprocessConfig(crop=crop, size=size)
    reference = preprocess(to_rgb(frame, encoding), config, 'rgb8')  # convert first
    assert np.array_equal(preprocess(frame, config, encoding), reference)
