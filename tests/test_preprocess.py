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


def channels(packed):
    packed = packed.astype(np.int64)
    return [(packed >> 11) & 0x1F, (packed >> 5) & 0x3F, packed & 0x1F]


@given(st.integers(0, 0xFFFF), st.integers(33, 240))
def test_downscale_of_a_flat_image_is_flat(value, size):
    out = pp.board_downscale_rgb565(np.full((size, size), value, np.uint16))
    assert out.shape == (32, 32) and out.dtype == np.uint16
    assert np.all(out == value)


@given(arrays(np.uint16, (32, 32)))
def test_downscale_to_the_same_size_is_identity(packed):
    assert np.array_equal(pp.board_downscale_rgb565(packed), packed)


@given(arrays(np.uint16, (64, 64)))
def test_halving_blends_pixel_pairs_with_imlib_rounding(packed):
    # scale 0.5: the accumulator starts half a pixel back, so output i blends source 2i-1 and 2i
    # with weight 16/32 each, rounded (a + b + 1) >> 1; output 0 clamps to the edge pixel.
    out = channels(pp.board_downscale_rgb565(packed))
    src = channels(packed)
    for o, s in zip(out, src):
        rows = np.concatenate([s[:1], (s[1:-1:2] + s[2::2] + 1) >> 1])
        expected = np.concatenate([rows[:, :1], (rows[:, 1:-1:2] + rows[:, 2::2] + 1) >> 1], axis=1)
        assert np.array_equal(o, expected)


@settings(max_examples=50)
@given(arrays(np.uint16, (200, 200)))
def test_downscale_stays_within_the_2x2_neighbourhood(packed):
    out, src = channels(pp.board_downscale_rgb565(packed)), channels(packed)
    for y, x in ((0, 0), (13, 7), (31, 31), (5, 30)):
        ys = [min(max(int(np.floor(y * 6.25 - 0.5)) + d, 0), 199) for d in (0, 1)]
        xs = [min(max(int(np.floor(x * 6.25 - 0.5)) + d, 0), 199) for d in (0, 1)]
        for o, s in zip(out, src):
            patch = s[np.ix_(ys, xs)]
            assert patch.min() <= o[y, x] <= patch.max()


def test_downscale_samples_rather_than_averages():
    # A one-pixel-wide stripe between sample points vanishes: the board's bilinear path samples 2x2.
    img = np.zeros((200, 200), np.uint16)
    img[:, 3] = 0xFFFF  # sample points sit near x = 6.25 i - 0.5; column 3 is never touched
    assert pp.board_downscale_rgb565(img).max() == 0


def test_board_downscale_of_rgb888_goes_through_rgb565():
    rgb = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    expected = pp.rgb565_to_rgb888(pp.board_downscale_rgb565(pp.rgb888_to_rgb565(rgb)))
    assert np.array_equal(pp.board_downscale(rgb), expected)


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


def gradient_scene() -> Image.Image:
    """A 320x240 picture every pixel of which differs from its neighbours (no flat area hides a change)."""
    y, x = np.mgrid[0:240, 0:320]
    return Image.fromarray(np.stack([x * 255 // 319, y * 255 // 239, (x + y) % 256], -1).astype(np.uint8))


def digest(pixels: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16]


# computed by the code before the input size was a property of the design (6f547ff: 32x32 everywhere)
GOLDEN_32 = "06d11c56a7983daf"


def test_32x32_pixels_are_bit_identical_to_the_fixed_size_code():
    scene = gradient_scene()
    assert digest(pp.board_pixels(scene)) == GOLDEN_32
    assert digest(pp.board_pixels(scene, 32)) == GOLDEN_32
    assert digest(pp.window_pixels(pp.camera_window_rgb565(scene), pp.INPUT_SIZE)) == GOLDEN_32


def test_board_pixels_at_another_input_size_are_the_board_scaling_to_it():
    scene = gradient_scene()
    pixels = pp.board_pixels(scene, 48)
    assert pixels.shape == (48, 48, 3)
    assert np.array_equal(pixels, pp.rgb565_to_rgb888(pp.board_downscale_rgb565(pp.camera_window_rgb565(scene), 48)))
    assert all(v.shape == (48, 48, 3) for v in pp.interpolation_variants(scene, 48))
