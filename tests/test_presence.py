"""Issue 16: nobody there, or not a face. imlib's statistics on the host, the presence gate, the
door rule (only frames with a face count) on the simulated board, and the deploy refusal."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from host import gate, preprocess
from host.errors import UserError
from host.field import logread
from host.framing import manifest_paths
from tests import simboard
from tools.payload import firmware_module, tmconfig

SCENES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scenes-negative"


def rgb_to_565(rgb: np.ndarray) -> np.ndarray:
    return preprocess.rgb888_to_rgb565(np.asarray(rgb, dtype=np.uint8))


def save_frames(folder: Path, frames: list[np.ndarray]) -> list[Path]:
    """200x200 RGB888 frames as lossless PNGs: the simulated camera window holds exactly them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(frames):
        path = folder / f"{i:05d}.png"
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def blank_wall(rng, n):
    return [np.clip(np.full((200, 200, 3), (196, 182, 160)) + rng.normal(0, 1.5, (200, 200, 3)), 0, 255) for _ in range(n)]


def covered_lens(rng, n):
    return [rng.integers(0, 12, (200, 200, 3)) for _ in range(n)]


def white_paper(rng, n):
    return [np.clip(np.full((200, 200, 3), (246, 244, 236)) + rng.normal(0, 2, (200, 200, 3)), 0, 255) for _ in range(n)]


def noise(rng, n):
    return [rng.integers(0, 256, (200, 200, 3)) for _ in range(n)]


NOBODY = {"blank wall": blank_wall, "covered lens": covered_lens, "white paper": white_paper, "noise": noise}


@functools.lru_cache(maxsize=1)
def reference():
    """The bundle the simulated runs use (2-class sigmoid or 3-class softmax), its config and model."""
    from host.sim.bundle import load, render
    from host.tflm import Int8Model

    bundle = load(simboard.bundle_dir())
    config = render(bundle, "openmv_h7", {"threshold": simboard.THRESHOLD, "debounce_frames": 3})
    return config, Int8Model(bundle.model)


def host_judge(path: Path, gate_on: bool = True) -> tuple[str, float, bool]:
    """(label, score, present) the host predicts for a frame file: window, board scaling, TFLM."""
    config, model = reference()
    with Image.open(path) as picture:
        window = preprocess.camera_window_rgb565(picture)
    pixels = preprocess.window_pixels(window)
    outputs = model.dequantized(preprocess.to_int8_input(pixels))
    return gate.DoorJudge(dict(config, presence_gate=gate_on)).judge(window, outputs)


def sure_masked(n: int) -> list[Path]:
    """n test images the host says are present and masked with P >= 0.9 (whatever the bundle)."""
    chosen = []
    for path in simboard.dataset_test_images():
        _, score, present = host_judge(path)
        if present and score >= 0.9:
            chosen.append(path)
            if len(chosen) == n:
                return chosen
    pytest.fail("the bundle is sure of fewer than %d masked test images" % n)


def frame_labels(result) -> list[str]:
    records = []
    for path in result.log_files():
        records.extend(r for r in logread.parse_log(path.read_bytes(), str(path)).records if r.kind == "F")
    return [r.label for r in records]


# --- imlib statistics --------------------------------------------------------------------------

def test_lab_table_holds_imlibs_values():
    # facts from openmv lib/imlib/lab_tab.c (v4.6.0, unchanged to v5.0.0): (pixel >> 1) -> L, A, B
    table = gate.lab_table()
    assert table.shape == (32768, 3)
    for pixel, lab in [(0x0000, (0, 0, -1)), (0xFFFF, (100, 0, 2)), (0xF800, (53, 80, 66)),
                       (0x07E0, (88, -86, 83)), (0x001F, (31, 78, -106)), (0x8410, (55, 2, -3))]:
        assert tuple(int(v) for v in table[pixel >> 1]) == lab


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 0xFFFF))
def test_uniform_block_statistics_are_the_pixels_lab(pixel):
    packed = np.full((12, 9), pixel, dtype=np.uint16)
    L, A, B = gate.get_statistics(packed)
    for channel, value in zip((L, A, B), gate.lab_table()[pixel >> 1]):
        assert channel.mean == channel.median == channel.mode == channel.min == channel.max == int(value)
        assert channel.lq == channel.uq == int(value)
        assert channel.stdev == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.integers(2, 40))
def test_statistics_agree_with_plain_numpy(seed, h, w):
    packed = np.random.default_rng(seed).integers(0, 65536, (h, w)).astype(np.uint16)
    L, A, B = gate.get_statistics(packed)
    values = gate.rgb565_to_lab(packed)
    for channel, v in zip((L, A, B), values):
        assert channel.min == v.min() and channel.max == v.max()
        assert abs(channel.mean - np.floor(v.mean())) <= 1  # float32 sums, as on the board
        assert abs(channel.stdev - np.floor(v.std())) <= 1
        assert channel.lq <= channel.median <= channel.uq
        assert int(np.sum(v <= channel.median)) >= v.size / 2 - 1e-9
        counts = np.bincount(v.ravel() - v.min())
        assert counts[channel.mode - v.min()] == counts.max()


def test_roi_is_clipped_and_bad_rois_raise_like_imlib():
    packed = np.zeros((20, 30), dtype=np.uint16)
    packed[:, 20:] = 0xFFFF
    assert gate.get_statistics(packed, roi=(20, 0, 100, 100))[0].mean == 100  # clipped to the image
    assert gate.get_statistics(packed, roi=(0, 0, 20, 20))[0].mean == 0
    with pytest.raises(OSError, match="Invalid ROI"):
        gate.get_statistics(packed, roi=(0, 0, 0, 5))
    with pytest.raises(OSError, match="does not overlap"):
        gate.get_statistics(packed, roi=(40, 0, 5, 5))
    with pytest.raises(OSError, match="must be >= 2"):
        gate.get_statistics(packed, bins=1)


# --- the gate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, reason", [("covered lens", "dark"), ("white paper", "flat"),
                                          ("blank wall", "flat"), ("noise", "plain")])
def test_gate_names_why_nobody_is_there(kind, reason):
    frame = rgb_to_565(NOBODY[kind](np.random.default_rng(3), 1)[0])
    assert gate.HostGate().reason(frame) == reason


def test_gate_lets_the_test_faces_through(data_dir):
    host_gate = gate.HostGate()
    paths = sorted((Path(data_dir) / "test").rglob("*.jpg"))[::5]
    stopped = []
    for path in paths:
        with Image.open(path) as picture:
            if host_gate.reason(preprocess.camera_window_rgb565(picture)) is not None:
                stopped.append(path.name)
    assert len(stopped) <= 0.01 * len(paths), stopped


def test_gate_off_passes_everything():
    config = gate.gate_config({"presence_gate": False})
    assert gate.HostGate(config).reason(np.zeros((200, 200), dtype=np.uint16)) is None


def test_block_layout_stays_inside_the_window():
    presence = firmware_module("presence")
    for grid in range(1, 9):
        for block in (4, 24, 240):
            rois = presence.block_rois(200, 200, grid, block)
            assert len(rois) == grid * grid
            for x, y, w, h in rois:
                assert w == h >= 1 and x >= 0 and y >= 0 and x + w <= 200 and y + h <= 200


def test_gate_settings_are_validated():
    tmconfig = firmware_module("tmconfig")
    config, errors = tmconfig.validate({"presence_grid": 0, "presence_dark_l": 101, "presence_gate": "yes"})
    assert len(errors) == 3
    assert config["presence_grid"] == 3 and config["presence_gate"] is True
    config, errors = tmconfig.validate({"none_label": "with_mask"})
    assert errors == ["none_label: must be a plain name other than positive_label and not a label of a sigmoid model"]
    assert config["none_label"] == "none"


# --- the door rule -----------------------------------------------------------------------------

def test_door_counts_only_frames_with_a_face():
    door = firmware_module("door").Door(0.8, 3, 1000)
    now = 0
    for _ in range(50):  # a sure "mask" score, but nobody there: never opens
        assert door.update(0.99, now, present=False) is None
        now += 30
    assert door.openings == 0
    door.update(0.99, now, True)
    door.update(0.99, now + 30, True)
    door.update(0.99, now + 60, False)  # a none frame breaks the streak
    door.update(0.99, now + 90, True)
    assert door.openings == 0
    door.update(0.99, now + 120, True)
    assert door.update(0.99, now + 150, True) == "door_open"


def test_a_none_frame_neither_holds_nor_slams_the_door():
    door = firmware_module("door").Door(0.8, 1, 300)
    assert door.update(0.99, 0, True) == "door_open"
    assert door.update(0.99, 100, False) is None and door.relay_on()  # walking through: still open
    assert door.update(0.99, 299, False) is None
    assert door.update(0.99, 300, False) == "door_close" and door.reason == "timeout"


@pytest.mark.parametrize("outputs, present, label", [
    ([0.1, 0.85, 0.05], True, "with_mask"),
    ([0.05, 0.15, 0.8], False, "none"),
    ([0.7, 0.1, 0.2], True, "without_mask"),
])
def test_three_class_softmax_none_class_means_nobody(outputs, present, label):
    config = gate.gate_config({"output_kind": "softmax", "labels": ["without_mask", "with_mask", "none"],
                               "positive_label": "with_mask"})
    model = firmware_module("infer").Model(config)
    score = model.judge(outputs)
    assert score == outputs[1]
    assert model.judge_presence(None) is present
    assert model.label == label
    judge = gate.DoorJudge(config)
    frame = preprocess.camera_window_rgb565(Image.new("RGB", (200, 200), (90, 60, 40)))
    assert judge.masked(frame, outputs, gate=False) == (label == "with_mask")


# --- simulated runs: nobody there never opens the door -----------------------------------------

@pytest.mark.parametrize("kind", sorted(NOBODY))
def test_nobody_there_never_opens_the_door(tmp_path, kind):
    frames = save_frames(tmp_path / "frames", NOBODY[kind](np.random.default_rng(7), 40))
    result = simboard.run(tmp_path, frames)
    assert result.frames == 40 and not result.errors()
    assert result.door_openings() == 0
    assert set(frame_labels(result)) == {"none"}


def test_without_the_gate_the_model_alone_says_who_is_there(tmp_path):
    """Gate off, only the model can say "nobody" (a none class); a 2-class model never does."""
    frames = save_frames(tmp_path / "frames", white_paper(np.random.default_rng(7), 6) + covered_lens(np.random.default_rng(8), 4))
    result = simboard.run(tmp_path, frames, {"presence_gate": False})
    expected = [host_judge(p, gate_on=False)[0] for p in frames]
    assert frame_labels(result) == expected
    if "none" not in reference()[0]["labels"]:
        assert "none" not in expected


def scene_sample(n: int) -> list[Path]:
    paths = manifest_paths(SCENES, "test")
    if not paths:
        pytest.fail(f"scenes-negative not found at {SCENES}")
    return paths[:: max(1, len(paths) // n)][:n]


def test_scenes_negative_sample_opens_nothing(tmp_path):
    config = reference()[0]
    if config["none_label"] not in config["labels"]:
        pytest.skip("real scenes with structure pass the gate; without a none class a 2-class model admits "
                    "58% of them (docs/presence.md): this needs a 3-class bundle")
    result = simboard.run(tmp_path, scene_sample(60))
    assert result.frames == 60 and not result.errors()
    assert result.door_openings() == 0


@pytest.mark.xfail(strict=True, reason="issue 16 is open: some of the 239 no-face test pictures score masked at the"
                   " bundle's door threshold (docs/presence.md); this passes, and strict xfail fails, once none does")
def test_every_no_face_test_picture_held_in_front_of_the_door_opens_nothing(tmp_path):
    """Each picture of the negatives' test split held for the debounce, at the bundle's own door
    threshold, as a deployed camera would run: the issue's zero openings."""
    bundle = simboard.bundle_dir()
    card = json.loads((bundle / "model_card.json").read_text())
    if card.get("none_label", "none") not in card["labels"]:
        pytest.skip("needs a 3-class bundle")
    debounce = 3
    frames = [p for p in manifest_paths(SCENES, "test") for _ in range(debounce)]
    result = simboard.run(tmp_path, frames, {"threshold": card["door_threshold"], "debounce_frames": debounce})
    assert result.frames == len(frames) and not result.errors()
    assert result.door_openings() == 0


def test_masked_face_after_a_stretch_of_nobody_opens_the_door(tmp_path):
    rng = np.random.default_rng(11)
    nobody = save_frames(tmp_path / "nobody", covered_lens(rng, 10) + blank_wall(rng, 10))
    masked = sure_masked(4)
    result = simboard.run(tmp_path, nobody + masked)
    assert result.door_openings() == 1
    labels = frame_labels(result)
    assert labels[:20] == ["none"] * 20 and "none" not in labels[20:]
    opened_at = next(t for t, event, _ in result.timed_events() if event == "door_open")
    assert opened_at > result.snapshot_ms[20 + 2]  # the third masked frame (debounce 3), not before


# --- host and simulated board agree ------------------------------------------------------------

@st.composite
def frames(draw):
    """Frames around the gate's thresholds: a base colour, noise of some amplitude, maybe a blob."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draw(st.integers(1, 4))):
        base = rng.integers(0, 256, 3) * draw(st.sampled_from([0.05, 0.5, 1.0]))
        amplitude = draw(st.sampled_from([0, 1, 3, 8, 40, 128]))
        rgb = np.clip(base + rng.normal(0, amplitude + 1e-9, (200, 200, 3)), 0, 255)
        if draw(st.booleans()):
            x, y, s = (int(v) for v in rng.integers(0, 120, 3))
            rgb[y:y + s + 10, x:x + s + 10] = rng.integers(0, 256, 3)
        out.append(rgb)
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames())
def test_gate_decides_the_same_on_host_and_simulated_board(tmp_path_factory, rgb_frames):
    tmp = tmp_path_factory.mktemp("agree")
    paths = save_frames(tmp / "frames", rgb_frames)
    expected = [host_judge(path)[0] for path in paths]
    result = simboard.run(tmp, paths)
    assert frame_labels(result) == expected


# --- deploy refusal ----------------------------------------------------------------------------

def relabelled_bundle(tmp_path: Path, labels: list[str], **card_fields) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(simboard.bundle_dir(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    card.update(labels=labels, **card_fields)
    (folder / "model_card.json").write_text(json.dumps(card))
    (folder / card["labels_file"]).write_text("\n".join(labels) + "\n")
    return folder


@pytest.mark.parametrize("labels, fields, message", [
    (["without_mask", "with_mask", "nobody"], {"output_kind": "softmax"}, "no 'none' class"),
    (["none", "with_mask"], {"output_kind": "sigmoid"}, "names a class of a sigmoid model"),
    (["without_mask", "with_mask", "none"], {"output_kind": "softmax", "none_label": "with_mask"}, "also the positive"),
])
def test_deploy_refuses_labels_the_gate_cannot_use(tmp_path, monkeypatch, capsys, labels, fields, message):
    from tools import deploy

    def no_camera(*args, **kwargs):
        raise AssertionError("the camera must not be touched")

    monkeypatch.setattr(deploy, "Remote", no_camera)
    bundle = relabelled_bundle(tmp_path, labels, **fields)
    with pytest.raises(UserError, match=message) as refused:
        deploy.main(["--board", "openmv_h7", "--bundle", str(bundle), "--dry-run"])
    assert "\n" not in str(refused.value) and str(bundle) in str(refused.value)


def test_three_class_bundle_with_a_none_class_is_accepted(tmp_path):
    from host.boards import load_board
    from tools.payload import load_bundle, render_config

    bundle = relabelled_bundle(tmp_path, ["without_mask", "with_mask", "none"], output_kind="softmax",
                               none_label="none")
    config = render_config(load_bundle(bundle, load_board("openmv_h7")), load_board("openmv_h7"), {})
    assert config["none_label"] == "none" and config["labels"][2] == "none"


# --- a scene that stands still (presence_still_ms) ----------------------------------------------

class BlockMeans:
    """An image whose gate blocks have given L* means (the rest of image.Image the gate reads)."""

    def __init__(self, means):
        self.means = list(means)
        self.next = 0

    def width(self):
        return 200

    def height(self):
        return 200

    def get_statistics(self, roi=None):
        mean = self.means[self.next % len(self.means)]
        self.next += 1
        return type("S", (), {"l_mean": lambda s: mean, "l_stdev": lambda s: 20})()


STILL_MS, CHANGE_L = 1000, 4


def still_gate():
    return gate.presence_module().Gate(gate.gate_config({"presence_still_ms": STILL_MS, "presence_change_l": CHANGE_L}))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(20, 80), min_size=9, max_size=9),
       st.lists(st.tuples(st.integers(1, 400), st.integers(-15, 15), st.lists(st.integers(-2, 2), min_size=9, max_size=9),
                          st.none() | st.tuples(st.integers(0, 8), st.integers(9, 30) | st.integers(-30, -9))),
                min_size=1, max_size=40))
def test_still_means_no_block_moved_against_the_others_for_still_ms(base, steps):
    """Frames of block means: a shift of every block alike (exposure, flicker) plus jitter of up to 2
    L* per block (9 x 2 + 8 x 2 = 34 <= 9 x 4 against the others) is never a change; one block moved by
    9 or more is, jitter or not (8 x 9 - 34 > 36). still() is True exactly when the last change (or
    the first frame) is at least presence_still_ms old."""
    g = still_gate()
    now = 0
    g.check(BlockMeans(base))
    assert g.still(now) is False  # the first frame is a change: nothing is known before it
    changed_at, level = 0, list(base)
    for dt, shift, jitter, kick in steps:
        now += dt
        if kick is not None:
            k, amount = kick
            level = list(level)
            level[k] += amount
            changed_at = now
            jitter = [0] * 9  # the new reference is exactly this frame (less the shift, which cancels)
        g.check(BlockMeans([m + shift + j for m, j in zip(level, jitter)]))
        assert g.still(now) is (now - changed_at >= STILL_MS), (now, changed_at)


@pytest.mark.parametrize("moved, change", [
    ([4] + [0] * 8, False),  # 9 x 4 - 4 = 32 against the others: within 4 x 9
    ([5, 4] + [0] * 7, False),  # 9 x 5 - 9 = 36: exactly the limit, not over it
    ([5, 3] + [0] * 7, True),  # 9 x 5 - 8 = 37
    ([5] + [0] * 8, True),  # 40
    ([-5] + [0] * 8, True),
    ([7] * 9, False),  # everything brighter alike: exposure, not a change
])
def test_a_change_is_a_block_moving_more_than_change_l_against_the_others(moved, change):
    g = still_gate()
    g.check(BlockMeans([50] * 9))
    g.still(0)
    g.check(BlockMeans([50 + m for m in moved]))
    g.still(STILL_MS - 1)
    g.check(BlockMeans([50 + m for m in moved]))
    assert g.still(STILL_MS) is (not change)  # a change at STILL_MS - 1 restarts the wait


def test_a_slow_drift_is_measured_against_the_last_change_not_the_last_frame():
    """One block drifting by 1 L* per frame never moves 4 between frames, but it moves 5 from the
    last change every 5 frames, so the window never counts as still."""
    g = still_gate()
    for frame in range(100):
        g.check(BlockMeans([50 + frame] + [50] * 8))
        assert g.still(frame * 100) is False, frame


def test_a_quiet_window_stays_quiet_across_the_ticks_wrap():
    """ticks_ms wraps at 2**30 (12 days): a poster left up for a week must not open the door again."""
    g = still_gate()
    g.check(BlockMeans([50] * 9))
    assert g.still(0) is False
    for now in (STILL_MS, 2**29 - 1, 2**29, 2**29 + STILL_MS, 2**30 - 1, 5, 2**29 + 7):
        g.check(BlockMeans([50] * 9))
        assert g.still(now) is True, now
    g.check(BlockMeans([60] + [50] * 8))
    assert g.still(2**29 + 9) is False  # a change ends the quiet, whenever it comes


def test_still_ms_below_a_second_is_refused_in_one_line():
    config, errors = tmconfig().validate({"presence_still_ms": 50})
    assert errors == ["presence_still_ms: 0 (off) or at least 1000 (shorter, a masked person standing still might"
                      " never open the door)"]
    assert config["presence_still_ms"] == 10000
    assert tmconfig().validate({"presence_still_ms": 0})[1] == []


def test_still_is_off_with_zero_or_with_the_gate_off():
    for overrides in ({"presence_still_ms": 0}, {"presence_gate": False}):
        g = gate.presence_module().Gate(gate.gate_config(overrides))
        for now in range(0, 100000, 5000):
            g.check(BlockMeans([50] * 9))
            assert g.still(now) is False


def held(face: Path, frames: int, sigma: float, seed: int = 3) -> list[np.ndarray]:
    """A picture held in front of the camera: its 200x200 window, with sensor-like noise per frame."""
    with Image.open(face) as picture:
        rgb = preprocess.rgb565_to_rgb888(preprocess.camera_window_rgb565(picture)).astype(np.float64)
    rng = np.random.default_rng(seed)
    return [np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255) for _ in range(frames)]


def door_times(result) -> list[tuple[float, str]]:
    """(time, event) of the door's events, without the close when the run stops."""
    return [(t, event) for t, event, reason in result.timed_events()
            if event == "door_open" or (event == "door_close" and reason != "stop")]


@pytest.mark.parametrize("sigma", [0.0, 4.0])
def test_a_scene_that_stands_still_opens_the_door_once_and_not_for_good(tmp_path, sigma):
    """A picture the model admits, held still (with or without sensor noise of sigma 4/255 per
    channel): the door opens once, closes presence_still_ms + open_ms after the picture appeared and
    stays closed, until the picture moves by 10 px, which opens it again. With the rule off it
    stays open to the end."""
    still = held(sure_masked(1)[0], 300, sigma)
    moved = [np.roll(frame, 10, axis=1) for frame in held(sure_masked(1)[0], 40, sigma, seed=4)]
    frames = save_frames(tmp_path / "frames", still + moved)
    config = {"presence_still_ms": STILL_MS, "open_ms": 500}
    result = simboard.run(tmp_path / "on", frames, config)
    assert result.frames == 340 and not result.errors()
    times = door_times(result)
    assert [e for _, e in times] == ["door_open", "door_close", "door_open"], times
    first = result.snapshot_ms[0]
    assert STILL_MS + 500 <= times[1][0] - first <= STILL_MS + 500 + 100
    assert result.snapshot_ms[299] - times[1][0] > 1000  # closed long before the picture moved
    assert times[2][0] > result.snapshot_ms[300]
    off = simboard.run(tmp_path / "off", frames, dict(config, presence_still_ms=0))
    assert [e for _, e in door_times(off)] == ["door_open"]


def test_a_person_who_moves_keeps_the_door_open(tmp_path):
    """The same picture, moved by 10 px now and then (a person shifting their weight): every move is
    a change, so the door stays open as before."""
    still = held(sure_masked(1)[0], 1, 0.0)[0]
    moved = np.roll(still, 10, axis=1)
    frames = save_frames(tmp_path / "frames", [still if (i // 30) % 2 == 0 else moved for i in range(180)])
    result = simboard.run(tmp_path, frames, {"presence_still_ms": STILL_MS, "open_ms": 500})
    assert result.frames == 180 and not result.errors()
    assert [e for _, e in door_times(result)] == ["door_open"]
