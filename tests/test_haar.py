"""host.haar: the port of OpenMV's Haar cascade detector keeps the firmware's integer arithmetic.

The regression cases hold rectangles from OpenMV's own C, so the port's fidelity is tested without
a compiler; the cascade data comes from the OpenMV source mirror, and those tests skip without it.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from host import haar

MIRROR = Path("/work/.mirror/openmv+openmv/repo")


def openmv_file(spec: str) -> bytes:
    """`git show <tag>:<path>` from the OpenMV mirror, or skip the test."""
    if not MIRROR.is_dir():
        pytest.skip(f"OpenMV source mirror {MIRROR} absent: the cascade data is not committed here")
    done = subprocess.run(["git", "-C", str(MIRROR), "show", spec], capture_output=True, check=False)
    if done.returncode:
        pytest.skip(f"git show {spec} failed in {MIRROR}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


@pytest.fixture(scope="module")
def frontalface() -> haar.Cascade:
    """The built-in frontalface of v4.5.5/v4.6.0, the same data v4.8.1 builds into ROMFS."""
    return haar.load_cascade(openmv_file("v4.6.0:src/omv/imlib/cascade.h"))


def gray_to_rgb565(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.int64)
    return (((g >> 3) << 11) | ((g >> 2) << 5) | (g >> 3)).astype(np.uint16)


def hashed_noise(height: int, width: int, seed: int) -> np.ndarray:
    """RGB565 noise from an integer hash: the same pixels on every numpy."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    v = (x * 73856093) ^ (y * 19349663) ^ (seed * 83492791)
    return ((((v * 2654435761) & 0xFFFFFFFF) >> 16) & 0xFFFF).astype(np.uint16)


def binary_noise(height: int, width: int, seed: int) -> np.ndarray:
    """Black and white noise: window standard deviations near 127, where imlib's uint32
    i_sq * n - i_s * i_s wraps."""
    return np.where(hashed_noise(height, width, seed) & 0x8000, 0xFFFF, 0).astype(np.uint16)


def cartoon_face(size: int, radius: int, background: int = 200, skin: int = 170, dark: int = 40) -> np.ndarray:
    """A drawn face in grey levels (skin oval, dark eyes and brows, nose shadow, mouth), RGB565."""
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)
    c, r = size // 2, radius
    img = np.full((size, size), background, np.int64)
    img[((x - c) ** 2 * 100 + (y - c) ** 2 * 64) <= r * r * 100] = skin
    for ex in (c - r * 2 // 5, c + r * 2 // 5):
        img[((x - ex) ** 2 * 4 + (y - (c - r // 4)) ** 2 * 9) <= (r // 5) ** 2 * 9] = dark
        img[(abs(x - ex) <= r // 4) & (abs(y - (c - r * 9 // 20)) <= max(r // 20, 1))] = dark + 20
    img[(abs(x - c) <= r // 3) & (abs(y - (c + r * 2 // 5)) <= max(r // 14, 1))] = dark + 30
    img[(abs(x - c) <= max(r // 12, 1)) & (y >= c - r // 10) & (y <= c + r // 6)] = skin - 40
    return gray_to_rgb565(img)


# Rectangles from OpenMV's C for these windows: lib/imlib/haar.c, integral_mw.c, rectangle.c and
# common/array.c at tag v4.8.1, compiled unchanged with gcc 12 (-O2 -fwrapv) against stub headers
# (imlib.h's types and macros copied from v4.8.1; fmath.h's fast_roundf as the Cortex-M7's vcvtr,
# round half to even) with the frontalface of v4.6.0 src/omv/imlib/cascade.h, called as
# find_features(cascade, threshold, scale_factor) on the whole image. "halves" marks the cases the
# C's host fallback for fast_roundf (roundf) answers differently.
C_RESULTS = {
    "hashed noise 64 seed 0": (lambda: hashed_noise(64, 64, 0), 2.5, 1.25, 25,
                               [(10, 11, 37, 37), (0, 22, 24, 24), (14, 36, 24, 24)]),
    "binary noise 64 seed 1, halves": (lambda: binary_noise(64, 64, 1), 2.5, 1.25, 25, [(10, 19, 30, 30)]),
    "hashed noise 64 seed 3, halves": (lambda: hashed_noise(64, 64, 3), 2.5, 1.25, 25,
                                       [(16, 11, 34, 34), (7, 20, 25, 25), (0, 36, 24, 24)]),
    "binary noise 64 seed 4, 5 stages, halves": (lambda: binary_noise(64, 64, 4), 0.75, 1.25, 5,
                                                 [(12, 10, 34, 34), (1, 10, 24, 24), (19, 33, 27, 27)]),
    "hashed noise 48 seed 2, defaults, 3 stages, halves": (lambda: hashed_noise(48, 48, 2), 0.5, 1.5, 3,
                                                           [(4, 1, 36, 36)]),
    "cartoon face 48": (lambda: cartoon_face(48, 16), 1.0, 1.25, 25, [(9, 6, 30, 30)]),
    "cartoon face 48 on dark, example settings": (lambda: cartoon_face(48, 12, 60, 220, 40), 0.75, 1.25, 25,
                                                  [(9, 9, 28, 28)]),
    "hashed noise 64 seed 0 as GRAYSCALE": (lambda: haar.grayscale(hashed_noise(64, 64, 0)), 2.5, 1.25, 25,
                                            [(10, 11, 37, 37), (0, 22, 24, 24), (14, 36, 24, 24)]),
    "binary noise 48 seed 0, 2 stages, a stage sum equal to its threshold passes": (
        lambda: binary_noise(48, 48, 0), 1.0, 1.25, 2, [(9, 8, 27, 27)]),
    "uniform grey": (lambda: np.full((64, 64), 0x7BEF, np.uint16), 0.75, 1.25, 25, []),
}


@pytest.mark.parametrize("case", list(C_RESULTS))
def test_detections_equal_openmvs_c(frontalface, case):
    make, threshold, scale_factor, stages, expected = C_RESULTS[case]
    assert haar.detect(make(), frontalface.truncated(stages), threshold, scale_factor) == expected


def toy_cascade() -> haar.Cascade:
    """One stage of one feature (whole window against its left half): enough to count work
    without OpenMV's data."""
    return haar.build_cascade(24, 24, [1], [0], [0], [-1], [1], [2], [-1, 2], [0, 0, 24, 24, 0, 0, 12, 24])


def test_grayscale_is_imlib_rgb565_to_y_on_every_value():
    v = np.arange(1 << 16, dtype=np.int64)
    r = (v >> 8) & 0xF8
    g = (v >> 3) & 0xFC
    b = (v << 3) & 0xF8
    r, g, b = r | (r >> 5), g | (g >> 6), b | (b >> 5)
    expected = (r * 38 + g * 75 + b * 15) >> 7
    assert np.array_equal(haar.grayscale(v.astype(np.uint16)).astype(np.int64), expected)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(2, 40), st.integers(2, 40))), st.data())
def test_integral_and_lookup_sum_rows_and_columns_after_the_corner(image, data):
    h_img, w_img = image.shape
    table = haar.integral(image)
    r, c = data.draw(st.integers(0, h_img - 1)), data.draw(st.integers(0, w_img - 1))
    assert table[r, c] == int(image[: r + 1, : c + 1].astype(np.int64).sum())
    x, y = data.draw(st.integers(0, w_img - 2)), data.draw(st.integers(0, h_img - 2))
    w, h = data.draw(st.integers(1, w_img - 1 - x)), data.draw(st.integers(1, h_img - 1 - y))
    assert haar.lookup(table, x, y, w, h) == int(image[y + 1 : y + h + 1, x + 1 : x + w + 1].astype(np.int64).sum())


def test_pyramid_of_the_door_window_at_the_example_scale_factor():
    """200 / 1.25**k truncated, and the step divides the previous step: 10, 10/1.25, 8/1.5625, ..."""
    scales = haar.pyramid(200, 200, 24, 24, 1.25)
    assert [s.width for s in scales] == [200, 160, 128, 102, 81, 65, 52, 41, 33, 26]
    assert [s.step for s in scales] == [10, 8, 5, 2, 1, 1, 1, 1, 1, 1]
    assert scales[-1].factor == np.float32(1.25) ** 9


@given(st.integers(25, 400), st.integers(25, 400), st.floats(1.05, 3.0))
def test_pyramid_windows_fit_steps_shrink_and_the_next_scale_would_not_fit(w, h, scale_factor):
    scales = haar.pyramid(w, h, 24, 24, scale_factor)
    assert scales and scales[0].factor == 1
    assert all(s.width >= 24 and s.height >= 24 and s.step >= 1 for s in scales)
    assert all(a.step >= b.step and a.factor < b.factor for a, b in zip(scales, scales[1:]))
    after = np.float32(scales[-1].factor * np.float32(scale_factor))
    assert int(np.float32(w) / after) < 24 or int(np.float32(h) / after) < 24


def test_work_on_a_uniform_door_window_counts_every_position_and_scores_none():
    work = haar.Work()
    assert haar.detect(np.full((200, 200), 0x7BEF, np.uint16), toy_cascade(), 0.75, 1.25, work) == []
    assert work.windows == 18**2 + 17**2 + 21**2 + 39**2 + 57**2 + 41**2 + 28**2 + 17**2 + 9**2 + 2**2
    assert (work.scored, work.features, work.rectangles) == (0, 0, 0)


def test_merge_averages_with_the_first_rectangle_in_one_pass():
    a, b, c = (0, 0, 10, 10), (8, 0, 10, 10), (16, 0, 10, 10)  # a meets b, b meets c, a misses c
    assert haar.merge([a, b, c]) == [(4, 0, 10, 10), c]
    assert haar.merge([(0, 0, 10, 10), (10, 0, 10, 10)]) == [(0, 0, 10, 10), (10, 0, 10, 10)]  # edges touch only


rects = st.tuples(st.integers(0, 150), st.integers(0, 150), st.integers(24, 60), st.integers(24, 60))


@given(st.lists(rects, min_size=1, max_size=12))
def test_merge_of_rectangles_keeps_count_bounds_and_disjoint_ones(boxes):
    merged = haar.merge(boxes)
    assert 1 <= len(merged) <= len(boxes)
    assert haar.merge([boxes[0]] * 5) == [boxes[0]]
    lo = [min(b[i] for b in boxes) for i in range(4)]
    hi = [max(b[i] for b in boxes) for i in range(4)]
    assert all(lo[i] <= m[i] <= hi[i] for m in merged for i in range(4))
    if not any(haar.intersects(p, q) for i, p in enumerate(boxes) for q in boxes[i + 1 :]):
        assert merged == boxes


@settings(max_examples=25, deadline=None)
@given(st.integers(25, 72), st.integers(25, 72), st.integers(0, 10**6), st.sampled_from([0.75, 2.5]))
def test_detections_lie_inside_the_window(frontalface, w, h, seed, threshold):
    window = binary_noise(h, w, seed) if seed % 2 else hashed_noise(h, w, seed)
    for x, y, rw, rh in haar.detect(window, frontalface, threshold, 1.25):
        assert 0 <= x and 0 <= y and x + rw <= w and y + rh <= h and rw == rh >= 24


@settings(max_examples=25, deadline=None)
@given(st.integers(25, 120), st.integers(25, 120), st.integers(0, 0xFFFF))
def test_a_uniform_frame_finds_nothing(frontalface, w, h, value):
    assert haar.detect(np.full((h, w), value, np.uint16), frontalface, 2.5, 1.25) == []


def test_frontalface_is_the_same_in_every_form_openmv_ships(frontalface):
    """v4.8.1's XML (built into ROMFS by tools/haar2c.py) = v4.6.0's compiled-in header = the
    binary .cascade layout haar.c reads."""
    from_xml = haar.load_cascade(openmv_file("v4.8.1:lib/haar/haarcascade_frontalface.xml"))
    from_binary = haar.load_cascade(cascade_binary(frontalface))
    for other in (from_xml, from_binary):
        assert_same_cascade(other, frontalface)
    assert (frontalface.width, frontalface.height, len(frontalface.stages)) == (24, 24, 25)
    assert (frontalface.features, frontalface.rectangles) == (2913, 6383)
    assert [s.features for s in frontalface.stages[:5]] == [9, 16, 27, 32, 52]


def test_stages_keep_the_first_n_as_haarcascade_does(frontalface):
    assert len(frontalface.truncated(10).stages) == 10
    for keep_all in (0, 25, 30, -1):
        assert frontalface.truncated(keep_all) is frontalface


def test_detect_refuses_what_the_firmware_refuses(frontalface):
    with pytest.raises(ValueError, match="smaller than detector window"):
        haar.detect(np.zeros((24, 40), np.uint16), frontalface)
    with pytest.raises(ValueError, match="scale_factor"):
        haar.detect(np.zeros((40, 40), np.uint16), frontalface, 0.75, 1.0)


def cascade_binary(cascade: haar.Cascade) -> bytes:
    """tools/haar2c.py's .cascade layout (v4.8.1:262-310), written independently of the parser."""
    stages = cascade.stages
    counts = [int((s.weights != 0).sum(axis=1)[i]) for s in stages for i in range(s.features)]
    out = struct.pack("<3i", cascade.width, cascade.height, len(stages))
    out += bytes(s.features for s in stages) + b"\0" * ((4 - (12 + len(stages)) % 4) % 4)
    out += struct.pack(f"<{len(stages)}h", *(s.threshold for s in stages))
    for name in ("feature_thresholds", "alpha1", "alpha2"):
        values = np.concatenate([getattr(s, name) for s in stages])
        out += struct.pack(f"<{len(values)}h", *values.tolist())
    out += struct.pack(f"<{len(counts)}b", *counts)
    weights = [int(w) // 4096 for s in stages for row in s.weights for w in row if w]
    rects = [int(v) for s in stages for row, ws in zip(s.rects, s.weights) for r, w in zip(row, ws) if w for v in r]
    return out + struct.pack(f"<{len(weights)}b", *weights) + struct.pack(f"<{len(rects)}b", *rects)


def assert_same_cascade(a: haar.Cascade, b: haar.Cascade) -> None:
    assert (a.width, a.height, len(a.stages)) == (b.width, b.height, len(b.stages))
    for s, t in zip(a.stages, b.stages):
        assert s.threshold == t.threshold and s.rectangles == t.rectangles
        for name in ("feature_thresholds", "alpha1", "alpha2", "rects", "weights"):
            assert np.array_equal(getattr(s, name), getattr(t, name)), name
