"""Contract 1: the pixel path. Property tests pin the RGB565 and downscale behaviour."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from host import preprocess as pp

rgb_arrays = arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3)))


@given(rgb_arrays)
def test_rgb565_round_trip_is_close_and_stable(rgb):
    back = pp.rgb565_to_rgb888(pp.rgb888_to_rgb565(rgb))
    error = np.abs(back.astype(int) - rgb.astype(int))
    assert error[..., 0].max() <= 4 and error[..., 2].max() <= 4  # 5-bit channels
    assert error[..., 1].max() <= 2  # 6-bit green
    # Expanding an RGB565 value and packing it again gives the same value: the tables are exact.
    assert np.array_equal(pp.rgb565_to_rgb888(pp.rgb888_to_rgb565(back)), back)


def test_rgb565_tables_match_openmv_endpoints():
    full = pp.rgb565_to_rgb888(np.array([0xFFFF, 0x0000, 0xF800, 0x07E0, 0x001F], np.uint16))
    assert full.tolist() == [[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    assert pp._R5_TO_R8[1] == 8 and pp._G6_TO_G8[1] == 4  # round(255/31), round(255/63)


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(33, 240))
def test_downscale_of_a_flat_image_is_flat(r, g, b, size):
    flat = np.empty((size, size, 3), np.uint8)
    flat[...] = (r, g, b)
    out = pp.board_downscale(flat)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.all(out == np.array([r, g, b], np.uint8))


@given(arrays(np.uint8, (32, 32, 3)))
def test_downscale_to_the_same_size_is_identity(rgb):
    assert np.array_equal(pp.board_downscale(rgb), rgb)


@settings(max_examples=50)
@given(arrays(np.uint8, (200, 200, 3)))
def test_downscale_stays_within_the_local_range(rgb):
    out = pp.board_downscale(rgb).astype(int)
    step = 200 / 32
    for y, x in ((0, 0), (13, 7), (31, 31)):
        x0, y0 = int(x * step), int(y * step)
        patch = rgb[y0:y0 + 2, x0:x0 + 2].astype(int)
        assert np.all(out[y, x] >= patch.min(axis=(0, 1))) and np.all(out[y, x] <= patch.max(axis=(0, 1)))


def test_downscale_samples_rather_than_averages():
    # A one-pixel-wide stripe between sample points vanishes: the board's bilinear path samples 2x2.
    img = np.zeros((200, 200, 3), np.uint8)
    img[:, 3] = 255  # column 3 lies between samples at x=0 and x=6.25
    assert pp.board_downscale(img).max() == 0


@given(arrays(np.uint8, (4, 4, 3)))
def test_int8_and_float_inputs_describe_the_same_pixels(pixels):
    q = pp.to_int8_input(pixels).astype(np.float32)
    x = pp.to_float_input(pixels)
    # The board's q = pixel - 128 is the float input quantized with scale 1/255, zero point -128.
    assert np.allclose((q + 128) / 255.0, x)


def test_square_crop_keeps_the_centre():
    img = Image.new("RGB", (300, 100), (0, 0, 0))
    img.paste((255, 0, 0), (100, 0, 200, 100))
    crop = pp.square_crop(img)
    assert crop.size == (100, 100)
    assert np.asarray(crop)[..., 0].min() == 255


def test_board_pixels_shape_and_interpolation_variants():
    img = Image.new("RGB", (45, 94), (10, 200, 30))
    assert pp.camera_window(img).shape == (200, 200, 3)
    assert pp.board_pixels(img).shape == (32, 32, 3)
    variants = pp.interpolation_variants(img)
    assert len(variants) == 5 and all(v.shape == (32, 32, 3) for v in variants)
