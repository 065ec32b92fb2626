"""Issue 13's door-camera augmentation parts: in range, seeded, and each one does what it says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from host import preprocess
from host.errors import UserError
from host.make import augment, ood, train
from host.make import data as data_mod


def batch(seed: int = 0, n: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("part", list(augment.DOOR_PARTS))
def test_every_door_part_is_seeded_in_range_and_changes_something(part):
    x = batch()
    mode = f"jitter+{part}" if part != "rgb565" else "rgb565+noise"
    a = augment.augment_batch(x, mode, np.random.default_rng(5))
    b = augment.augment_batch(x, mode, np.random.default_rng(5))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and a.min() >= 0.0 and a.max() <= 1.0
    only = augment.DOOR_FUNCTIONS.get(part, augment.door_framing)
    args = (None,) if part == "doorframe" else ()
    assert not np.array_equal(only(x, np.random.default_rng(5), 1.0, *args), x)


def test_door_mode_starts_with_door_framing_and_ends_with_rgb565():
    parts = augment.parts_of("door")
    assert parts[0] == "jitter" and parts[1] == "doorframe" and parts[-1] == "rgb565"
    assert augment.valid_mode("jitter+doorframe+rgb565") and not augment.valid_mode("jitter+doorframe+doorframe")


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["box", "board"]))
def test_door_framing_puts_a_shrunken_face_inside_a_scene(seed, shrink):
    """With probability 1 every picture either stays whole (side drawn as the full window) or
    becomes the scene with a square face of 40-100% of the side pasted within a quarter of the
    slack of the centre, and nothing but scene around it."""
    face = np.full((4, 32, 32, 3), 0.9, np.float32)
    scenes = np.zeros((3, 32, 32, 3), np.uint8)  # black scenes
    out = augment.door_framing(face, np.random.default_rng(seed), 1.0, scenes, shrink)
    for image in out:
        if np.array_equal(image, face[0]):
            continue
        bright = image.mean(axis=-1) > 0.5
        rows, cols = np.nonzero(bright)
        top, left, side = rows.min(), cols.min(), rows.max() - rows.min() + 1
        assert 12 <= side < 32 and cols.max() - left + 1 == side  # a square, 40-100% of 32
        assert bright[top:top + side, left:left + side].all() and bright.sum() == side * side  # scene around it
        slack = 32 - side
        assert abs(top - slack // 2) <= slack // 4 and abs(left - slack // 2) <= slack // 4


def test_door_framing_without_scenes_uses_smooth_colour_fields():
    face = np.full((32, 32, 32, 3), 0.5, np.float32)
    out = augment.door_framing(face, np.random.default_rng(1), 1.0, None)
    changed = [i for i in range(len(out)) if not np.array_equal(out[i], face[i])]
    assert changed, "p=1 frames at least some pictures"
    corners = np.stack([out[i, 0, 0] for i in changed])
    assert corners.std() > 0.05  # the fields differ from picture to picture


def test_training_batches_take_their_scenes_from_the_none_class():
    pixels = np.zeros((6, 32, 32, 3), np.uint8)
    pixels[3:] = 200
    labels = np.array([0, 1, 0, 2, 2, 2])
    from host.make import train

    scenes = train.scene_pixels(pixels, labels)
    assert scenes.shape == (3, 32, 32, 3) and (scenes == 200).all()
    assert train.scene_pixels(pixels[:3], labels[:3]) is None


def test_door_framed_split_keeps_faces_only_and_uses_the_board_path(tmp_path):
    paths = []
    for i, colour in enumerate([(250, 10, 10), (10, 250, 10), (10, 10, 250)]):
        path = tmp_path / f"face{i}.png"
        Image.new("RGB", (64, 64), colour).save(path)
        paths.append(path)
    scene = tmp_path / "scene.png"
    Image.new("RGB", (300, 300), (0, 0, 0)).save(scene)
    split = data_mod.Split(np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 2]), ["a", "b", "c"], paths,
                           ["s", "s", "s"])
    framed = ood.door_framed_split(split, [scene], seed=3)
    assert list(framed.labels) == [0, 1] and framed.paths == paths[:2]
    assert framed.pixels.shape == (2, 32, 32, 3)
    assert framed.pixels[0, 0, 0].max() == 0  # the scene shows at the corner: the face fills 40-70%
    centre = framed.pixels[0, 16, 16].astype(int)
    assert centre[0] > 200 and centre[1] < 40  # the red face in the middle
    levels = preprocess.rgb565_to_rgb888(preprocess.rgb888_to_rgb565(framed.pixels))
    assert np.array_equal(levels, framed.pixels)  # RGB565 levels: the camera's own


def test_flat_door_framing_puts_the_same_faces_in_the_same_places_before_each_scenes_mean(tmp_path):
    """bench_framing_background compares a face in its scene with the same face before the scene's
    mean colour: only the background may differ, and each face's scene is known."""
    paths = []
    for i in range(4):
        path = tmp_path / f"face{i}.png"
        Image.new("RGB", (64, 64), (250, 250, 250) if i % 2 else (10, 10, 10)).save(path)
        paths.append(path)
    scenes = []
    for i, colours in enumerate([((255, 0, 0), (0, 0, 255)), ((0, 255, 0), (0, 255, 0))]):
        scene = Image.new("RGB", (200, 200), colours[0])
        scene.paste(colours[1], (0, 0, 200, 100))  # top half blue: a scene with structure; its mean is purple
        scenes.append(tmp_path / f"scene{i}.png")
        scene.save(scenes[-1])
    split = data_mod.Split(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 0, 1]), list("abcd"), paths, ["s"] * 4)
    scene_of: list[int] = []
    real = ood.door_framed_split(split, scenes, seed=5, scene_of=scene_of)
    flat = ood.door_framed_split(split, scenes, seed=5, flat=True)
    assert len(scene_of) == 4 and set(scene_of) <= {0, 1}
    face = (real.pixels == flat.pixels).all(axis=-1)
    assert face[:, 14:18, 14:18].all()  # the face (40-70% of the window, near the centre) is the same pixels
    for row, scene in enumerate(scene_of):
        corners = flat.pixels[row, [0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
        assert (np.ptp(corners, axis=0) <= 8).all()  # one colour behind the face
        if scene == 0:
            assert not face[row, 0, 0] and corners[0, 0] > 100 and corners[0, 2] > 100  # purple, not blue


def test_door_threshold_holds_one_percent_for_close_ups_and_door_framed_faces():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 200 + [1] * 200)

    def scored(unmasked_high):
        p = np.concatenate([rng.uniform(0.0, unmasked_high, 200), rng.uniform(0.7, 1.0, 200)])
        return ood.Scored("x", labels, p[:, None], "")

    close, framed = scored(0.55), scored(0.9)
    t_close, t_both = ood.door_threshold(close), ood.door_threshold(close, framed)
    assert t_both > t_close
    for s in (close, framed):
        assert ood.door_figures(s.scores, s.labels, t_both)["unmasked_admitted"] <= ood.MAX_UNMASKED_ADMITTED
    assert ood.door_figures(framed.scores, framed.labels, t_close)["unmasked_admitted"] > ood.MAX_UNMASKED_ADMITTED


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.2))
def test_operating_points_follow_the_threshold_and_a_no_face_target_picks_the_lowest_level(seed, target):
    """benchmarks/bench_tradeoff.py: from the door threshold up, every share admitted falls or holds;
    a no-face target gives the masked shares of the lowest level meeting it (checked by brute force)."""
    rng = np.random.default_rng(seed)

    def scored(labels):
        p = np.round(rng.uniform(0.3, 1.0, len(labels)) * 256) / 256
        outputs = np.stack([1 - p, p, np.zeros_like(p)], axis=1)
        return ood.Scored("x", np.array(labels), outputs, "")

    close, framed = scored([0] * 120 + [1] * 60), scored([0] * 100 + [1] * 50)
    nobody = scored([2] * 80)
    points = ood.operating_points(close, framed, nobody)
    assert points["level"][0] == ood.door_threshold(close, framed)
    for key in ("no_face", "close", "framed"):
        assert np.all(np.diff(points[key]) <= 0)
    got = ood.masked_at_no_face(points, target)
    meeting = [t for t in points["level"] if (nobody.scores >= t).mean() <= target + 1e-9]
    if not meeting:
        assert got is None and ood.first_at_no_face(points, target) is None
    else:
        t = meeting[0]
        assert points["level"][ood.first_at_no_face(points, target)] == t
        assert got == ((close.scores[close.labels == 1] >= t).mean(), (framed.scores[framed.labels == 1] >= t).mean())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_none_cap_at_zero_is_the_largest_cap_admitting_no_no_face_picture(seed):
    """benchmarks/bench_tradeoff.py's none cap: at the build's threshold, the cap admits none of the
    no-face pictures, one step more admits one (or it is the top), and the masked shares are those of
    the door rule with the cap (checked by brute force)."""
    rng = np.random.default_rng(seed)

    def scored(labels):
        p_with = np.round(rng.uniform(0.3, 1.0, len(labels)) * 256) / 256
        p_none = np.round(rng.uniform(0.0, 1.0, len(labels)) * (1 - p_with) * 256) / 256
        return ood.Scored("x", np.array(labels), np.stack([1 - p_with - p_none, p_with, p_none], axis=1), "")

    close, framed, nobody = scored([0] * 120 + [1] * 60), scored([0] * 100 + [1] * 50), scored([2] * 30)
    got = ood.none_cap_at_zero(close, framed, nobody)
    level = ood.door_threshold(close, framed)

    def admits(s, cap):
        return (s.scores >= level) & (s.scores > 1 - level) & (s.outputs[:, 2] <= cap + 1e-9)

    if got["cap"] is None:
        assert admits(nobody, 0.0).any()
        return
    assert not admits(nobody, got["cap"]).any()
    assert got["cap"] == 255 / 256 or admits(nobody, got["cap"] + 1 / 256).any()
    assert got["cap_close"] == admits(close, got["cap"])[close.labels == 1].mean()
    assert got["cap_framed"] == admits(framed, got["cap"])[framed.labels == 1].mean()
    assert ood.none_cap_at_zero(ood.Scored("two", close.labels, close.outputs[:, :2], ""), framed, nobody) == {"cap": None}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.3))
def test_a_no_face_target_raises_the_door_threshold_to_the_lowest_level_meeting_every_target(seed, target):
    """--max-no-face: the door threshold is the lowest int8 level at which the unmasked faces (close
    up and door-framed) and the no-face pictures all keep to their targets; one level lower misses
    one of them, and the faces-only threshold is never above it (checked by brute force)."""
    rng = np.random.default_rng(seed)
    high = {0: 0.85, 1: 1.0, 2: 1.0}  # unmasked faces mostly low, no-face pictures up to the top: the target bites

    def scored(labels):
        p = np.round(np.array([rng.uniform(0.3, high[c]) for c in labels]) * 256) / 256
        return ood.Scored("x", np.array(labels), np.stack([1 - p, p, np.zeros_like(p)], axis=1), "")

    close, framed, nobody = scored([0] * 150 + [1] * 60), scored([0] * 120 + [1] * 40), scored([2] * 90)

    def meets(t):
        unmasked = [(s.scores[s.labels == 0] >= t).mean() for s in (close, framed)]
        return max(unmasked) <= ood.MAX_UNMASKED_ADMITTED and (nobody.scores >= t).mean() <= target + 1e-9

    t = ood.door_threshold(close, framed, nobody, target)
    assert t >= ood.door_threshold(close, framed)
    meeting = [level for level in ood.INT8_LEVELS if meets(level)]
    if meeting:
        assert t == meeting[0]
        points = ood.operating_points(close, framed, nobody)  # bench_tradeoff.py's threshold for the same target
        assert points["level"][ood.first_at_no_face(points, target)] == t
    else:
        assert t == ood.INT8_LEVELS[-1]
    assert ood.door_threshold(close, framed, nobody, None) == ood.door_threshold(close, framed)


def test_a_no_face_target_no_level_meets_is_reported_missed_at_the_top_level():
    faces = ood.Scored("faces", np.array([0] * 100 + [1] * 100),
                       np.stack([np.r_[np.full(100, 0.9), np.full(100, 0.1)], np.r_[np.full(100, 0.1), np.full(100, 0.9)],
                                 np.zeros(200)], axis=1), "")
    nobody = ood.Scored("nobody", np.full(50, 2), np.tile([0.0, 255 / 256, 0.0], (50, 1)), "")
    assert ood.door_threshold(faces) < ood.door_threshold(faces, None, nobody, 0.02) == ood.INT8_LEVELS[-1]
    door = {"threshold": ood.INT8_LEVELS[-1], "face_threshold": ood.door_threshold(faces), "max_no_face": 0.02,
            "no_face_set": "nobody", "calibration": "faces", "calibration_framed": None, "degraded_mean": None,
            "degraded_accuracy": {}, "calibration_description": "",
            "sets": ood.report([faces, nobody], ood.INT8_LEVELS[-1])}
    assert ood.missed_no_face(door) == 1.0
    assert "WARNING: no threshold holds nobody to 2% no-face admitted: 100.00%" in ood.summary(door)
    fields = ood.card_fields(door)["door_expected"]
    assert fields["no_face_target_met"] is False and fields["target_no_face_admitted"] == 0.02
    assert fields["threshold_for_faces_alone"] == ood.door_threshold(faces)  # the int8 level itself, not rounded off it
    stored = ood.card_fields(door)["door_threshold"]
    assert stored == ood.INT8_LEVELS[-1] and stored * 256 == 255


@pytest.mark.parametrize("share", [0.0, 0.25, 0.75, 1.0])
def test_the_doorframe_share_is_the_share_of_pictures_door_framed(share):
    """host.train --doorframe P: about P of the pictures become a shrunken face in a scene (a
    picture whose drawn side is the whole window, 1 in 40, stays whole), the rest are untouched."""
    x = np.full((400, 32, 32, 3), 0.9, np.float32)
    scenes = np.zeros((2, 32, 32, 3), np.uint8)
    out = augment.augment_batch(x, "doorframe", np.random.default_rng(3), scenes, doorframe=share)
    framed = np.mean([not np.array_equal(o, x[0]) for o in out])
    assert abs(framed - share * 0.975) < 0.07
    default = augment.augment_batch(x, "doorframe", np.random.default_rng(3), scenes)
    assert np.array_equal(default, augment.augment_batch(x, "doorframe", np.random.default_rng(3), scenes,
                                                         doorframe=augment.DOOR_PARTS["doorframe"][0]))


def test_board_shrink_is_the_cameras_scaling_and_sharper_than_the_area_average():
    """--doorframe-shrink board: the face is made small by host.preprocess.board_downscale (the
    camera's 2-tap bilinear), which keeps stripes an area average washes out."""
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::2] = 255
    side = 13
    assert np.array_equal(augment.shrunk(stripes, side, "board"), preprocess.board_downscale(stripes, side))
    assert augment.shrunk(stripes, side, "board").std() > 2 * augment.shrunk(stripes, side, "box").std()


def test_window_shrink_pastes_the_face_sampled_from_its_window_copy():
    """--doorframe-shrink window: the face in the scene is the board's scaling of the picture's own
    64 px camera-window copy (the detail the 32 px picture lost), not of the 32 px picture."""
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    windows = np.stack([preprocess.rgb888_to_rgb565(a) for a in rgb])
    x = np.zeros((4, 32, 32, 3), np.float32)  # black 32 px pictures: the face can only come from the window
    scenes = np.zeros((1, 32, 32, 3), np.uint8)
    out = augment.door_framing(x, np.random.default_rng(9), 1.0, scenes, "window", windows)
    for i, image in enumerate(out):
        lit = np.nonzero(image.max(axis=-1) > 0)
        if not len(lit[0]):
            continue
        top, left = lit[0].min(), lit[1].min()
        side = lit[0].max() - top + 1
        expected = preprocess.window_pixels(windows[i], side).astype(np.float32) / 255.0
        assert np.allclose(image[top:top + side, left:left + side], expected, atol=1e-6)


def test_window_shrink_needs_a_window_copy_per_image():
    with pytest.raises(ValueError, match="window copy per image"):
        augment.augment_batch(batch(n=4), "doorframe", np.random.default_rng(0), None, 1.0, "window", None)


def test_window_copies_are_the_camera_window_at_64_px(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
    copy = augment.window_copies([path], progress=False)
    assert copy.shape == (1, augment.WINDOW_COPY, augment.WINDOW_COPY) and copy.dtype == np.uint16
    window = preprocess.camera_window_rgb565(Image.open(path).convert("RGB"))
    assert np.array_equal(copy[0], preprocess.board_downscale_rgb565(window, augment.WINDOW_COPY))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_none_zoom_replaces_only_no_face_pictures_by_a_square_of_their_window(seed, p):
    """--none-zoom: faces untouched; a changed no-face picture is the board's scaling of a square of
    50-100% of its window's side. The windows carry their coordinates (red x, green y), so the
    square is searched near the corners the picture shows."""
    ys, xs = np.mgrid[0:64, 0:64]
    rgb = np.stack([xs * 4, ys * 4, np.full_like(xs, 128)], axis=-1).astype(np.uint8)
    windows = np.stack([preprocess.rgb888_to_rgb565(rgb)] * 6)
    pixels = np.stack([preprocess.window_pixels(w) for w in windows])
    no_face = np.array([True, False, True, False, True, True])
    out = augment.none_zoom(pixels, no_face, windows, np.random.default_rng(seed), p)
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    for i in np.nonzero(~no_face)[0]:
        assert np.array_equal(out[i], pixels[i])
    for i in np.nonzero(no_face & np.any(out != pixels, axis=(1, 2, 3)))[0]:
        x0, y0 = int(out[i, 0, 0, 0]) // 4, int(out[i, 0, 0, 1]) // 4
        x1 = int(out[i, -1, -1, 0]) // 4
        candidates = [(s, y, x) for s in range(x1 - x0 - 3, x1 - x0 + 5) for y in range(y0 - 3, y0 + 4)
                      for x in range(x0 - 3, x0 + 4) if 32 <= s <= 64 and 0 <= x <= 64 - s and 0 <= y <= 64 - s]
        assert any(np.array_equal(out[i], preprocess.window_pixels(windows[i, y:y + s, x:x + s]))
                   for s, y, x in candidates), i
    if p == 0:
        assert np.array_equal(out, pixels)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.lists(st.booleans(), min_size=1, max_size=8))
def test_none_jigsaw_puts_a_face_of_the_batch_in_a_no_face_slot_with_its_tiles_shuffled(seed, p, flags):
    """--none-jigsaw: faces untouched; a changed no-face picture holds the 16 tiles of one face of the
    batch, each whole, at least one out of place; its window copy holds that face's window tiles in
    the same order, so door framing from the window pastes the shuffled face."""
    no_face = np.array(flags)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (len(flags), 32, 32, 3), dtype=np.uint8)
    windows = rng.integers(0, 2**16, (len(flags), 64, 64), dtype=np.uint16)
    out, out_windows = augment.none_jigsaw(pixels, no_face, windows, np.random.default_rng(seed + 1), p)
    assert out.shape == pixels.shape and out_windows.shape == windows.shape
    for i in np.nonzero(~no_face)[0]:
        assert np.array_equal(out[i], pixels[i]) and np.array_equal(out_windows[i], windows[i])
    if p == 0 or no_face.all():
        assert np.array_equal(out, pixels) and np.array_equal(out_windows, windows)

    def tiles(image, side):
        return [image[r * side:(r + 1) * side, c * side:(c + 1) * side] for r in range(4) for c in range(4)]

    for i in np.nonzero(no_face & np.any(out != pixels, axis=(1, 2, 3)))[0]:
        got = tiles(out[i], 8)
        sources = [j for j in np.nonzero(~no_face)[0]
                   if all(any(np.array_equal(t, u) for u in tiles(pixels[j], 8)) for t in got)]
        assert sources, i
        j = sources[0]
        order = [next(k for k, u in enumerate(tiles(pixels[j], 8)) if np.array_equal(t, u)) for t in got]
        assert sorted(order) == list(range(16)) and order != list(range(16))
        window_tiles, face_window_tiles = tiles(out_windows[i], 16), tiles(windows[j], 16)
        assert all(np.array_equal(window_tiles[k], face_window_tiles[order[k]]) for k in range(16))


def test_none_jigsaw_without_window_copies_and_its_bounds():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    out, windows = augment.none_jigsaw(pixels, np.array([True, False, True, False]), None,
                                       np.random.default_rng(1), 1.0)
    assert windows is None and not np.array_equal(out[0], pixels[0]) and np.array_equal(out[1], pixels[1])
    assert any(np.array_equal(np.sort(out[0], axis=None), np.sort(pixels[j], axis=None)) for j in (1, 3))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match="--none-jigsaw"):
            train.TrainConfig(none_jigsaw=bad)


def test_none_zoom_needs_window_copies():
    with pytest.raises(UserError, match="--none-zoom needs"):
        train.TrainConfig(none_zoom=0.5, doorframe_shrink="box")
    with pytest.raises(UserError, match="--none-zoom 2"):
        train.TrainConfig(none_zoom=2.0, doorframe_shrink="window")


# ---- a model input other than 32x32 (issue 13's 48x48 candidate) ------------------------------------


def test_window_framing_at_48_samples_the_face_from_the_same_64_px_copies():
    """A 48x48 design: door framing from the window pastes the board's scaling of the 64 px window
    copy at the side drawn from 40-100% of 48, in a 48 px scene."""
    rng = np.random.default_rng(2)
    windows = np.stack([preprocess.rgb888_to_rgb565(a) for a in rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)])
    x = np.zeros((4, 48, 48, 3), np.float32)
    out = augment.door_framing(x, np.random.default_rng(9), 1.0, np.zeros((1, 48, 48, 3), np.uint8), "window", windows)
    assert out.shape == (4, 48, 48, 3)
    pasted = 0
    for i, image in enumerate(out):
        lit = np.nonzero(image.max(axis=-1) > 0)
        if not len(lit[0]):
            continue
        top, left, side = lit[0].min(), lit[1].min(), lit[0].max() - lit[0].min() + 1
        assert 19 <= side < 48
        expected = preprocess.window_pixels(windows[i], side).astype(np.float32) / 255.0
        assert np.allclose(image[top:top + side, left:left + side], expected, atol=1e-6)
        pasted += 1
    assert pasted


def test_an_input_larger_than_the_window_copies_is_refused_in_one_line():
    augment.check_window_copy(augment.WINDOW_COPY)  # 64: as large as the copies
    with pytest.raises(UserError) as caught:
        augment.check_window_copy(80)
    assert "\n" not in str(caught.value) and "80x80" in str(caught.value) and "64 px" in str(caught.value)
    with pytest.raises(UserError, match="80x80"):
        augment.door_framing(np.zeros((2, 80, 80, 3), np.float32), np.random.default_rng(0), 1.0, None, "window",
                             np.zeros((2, 64, 64), np.uint16))
    door = train.TrainConfig(augment="door", doorframe_shrink="window")
    with pytest.raises(UserError, match="80x80"):
        train.check_input_size(door, 80)  # host.build: before any picture is decoded
    train.check_input_size(door, 64)
    train.check_input_size(train.TrainConfig(augment="door", doorframe_shrink="board"), 80)  # no copies used


def test_a_door_framed_split_at_another_size_frames_the_same_faces_in_the_same_places(tmp_path):
    """Split.at: a 48x48 bundle and a 32x32 one compared on door-framed faces see the same framings."""
    rng = np.random.default_rng(6)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"face{i}.png")
        Image.fromarray(rng.integers(0, 256, (80, 64, 3), dtype=np.uint8)).save(paths[-1])
    scene = tmp_path / "scene.png"
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(scene)
    at_32 = data_mod.Split(np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 2]), list("abc"), paths, ["s"] * 3)
    at_48 = data_mod.Split(np.zeros((3, 48, 48, 3), np.uint8), np.array([0, 1, 2]), list("abc"), paths, ["s"] * 3)
    framed_32, framed_48 = ood.door_framed_split(at_32, [scene], seed=3), ood.door_framed_split(at_48, [scene], seed=3)
    assert framed_48.pixels.shape == (2, 48, 48, 3) and framed_32.pixels.shape == (2, 32, 32, 3)
    assert np.array_equal(framed_32.at(48).pixels, framed_48.pixels)
    assert np.array_equal(framed_48.at(32).pixels, framed_32.pixels)
    assert framed_32.at(32) is framed_32 and framed_48.at(32).paths == framed_32.paths
