"""The real firmware/main.py on the simulated board: door behaviour, faults, logs, firmware families."""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image
from simboard import (
    MASK,
    NO_MASK,
    UNSURE,
    bundle_dir,
    dataset_test_images,
    events,
    frame_records,
    frames_of,
    host_label,
    host_rows,
    host_scores,
    read_log,
    relay_active_after,
    run,
    sequence,
)

from host.errors import UserError, run_cli
from host.field import logread
from host.sim import Faults, FrameRange
from tools.payload import FIRMWARE_DIR

# --- the door ------------------------------------------------------------------------------------

def test_door_opens_only_after_debounce(tmp_path):
    frames = sequence((MASK, 2), (NO_MASK, 1), (MASK, 2), (UNSURE, 1), (MASK, 5))
    result = run(tmp_path, frames, {"debounce_frames": 3})
    states = [r.door for r in frame_records(result)]
    assert states == ["closed"] * 8 + ["opening", "open", "holding"]
    assert len(events(result, "door_open")) == 1
    first_on = next(t for t, level in result.relay.history if result.relay_active(level))
    assert result.snapshot_ms[8] <= first_on < result.snapshot_ms[9]
    assert result.door_openings() == 1


def test_door_closes_at_once_on_no_mask(tmp_path):
    frames = sequence((MASK, 4), (NO_MASK, 1), (MASK, 1))
    result = run(tmp_path, frames, {"debounce_frames": 3})
    assert [r.door for r in frame_records(result)] == ["closed", "closed", "opening", "open", "closed", "closed"]
    closes = events(result, "door_close")
    assert [c.detail for c in closes] == ["no_mask"]
    assert not relay_active_after(result, result.snapshot_ms[5])


# with no camera settling the door holds at ~0.5 s and closes at ~1 s: the wrap lands in between
@pytest.mark.parametrize("start_ticks", [0, (1 << 30) - 700], ids=["ticks-0", "ticks-wrap"])
def test_door_closes_open_ms_after_last_mask_frame(tmp_path, start_ticks):
    frames = sequence((MASK, 3), (UNSURE, 12), (MASK, 1), (UNSURE, 40))
    config = {"debounce_frames": 3, "open_ms": 500, "camera_skip_ms": 0}
    result = run(tmp_path, frames, config, start_ticks_ms=start_ticks)
    records = frame_records(result)
    assert [c.detail for c in events(result, "door_close")] == ["timeout"]
    holding = records[15]
    assert holding.door == "holding"  # the mask frame after the unsure ones restarted the timer
    closed_at = next(r for r in records[16:] if r.door == "closed")
    elapsed = (closed_at.ticks_ms - holding.ticks_ms) % (1 << 30)
    frame = records[1].frame_ms
    assert 500 <= elapsed <= 500 + 2 * frame
    on = [t for t, level in result.relay.history if result.relay_active(level)]
    off = [t for t, level in result.relay.history[1:] if not result.relay_active(level)]
    assert len(on) == 1 and len(off) == 1
    if start_ticks:
        ticks = [r.ticks_ms for r in records[15:records.index(closed_at) + 1]]
        assert any(b < a for a, b in zip(ticks, ticks[1:])), "ticks_ms should wrap while the door is open"


# --- faults: the door never stays open, the error is reported, the loop goes on -------------------

def _red_blinks(result) -> int:
    return sum(1 for _, lit in result.leds["red"].history if lit)


def _lit_since(result, name: str, t_ms: float) -> bool:
    """The LED was switched on by t_ms and stayed on until the run stopped (which turns LEDs off)."""
    history = result.leds[name].history
    before = [lit for t, lit in history if t <= t_ms]
    changes = [lit for t, lit in history if t > t_ms]
    return bool((before and before[-1]) or changes[:1] == [True]) and changes.count(False) <= 1


@pytest.mark.parametrize("fault", ["no-sd", "missing-model", "corrupt-model", "camera-init"])
def test_fault_from_boot_keeps_door_closed(tmp_path, fault):
    result = run(tmp_path, frames_of(MASK, 60), faults=Faults.parse([fault]))
    assert not relay_active_after(result, 0.0)
    assert result.door_openings() == 0
    expected = {"no-sd": "error", "missing-model": "model_error", "corrupt-model": "model_error",
                "camera-init": "camera_error"}[fault]
    assert expected in [event for event, _ in result.errors()]
    assert _red_blinks(result) >= 2  # red blinking: fault
    if fault == "camera-init":
        assert result.frames == 0 and result.exit == "time limit"
        assert result.calls["sensor.reset"] > 3  # retried every recover_ms
    else:
        assert result.frames == 60 and result.exit == "frames"  # the loop kept running
    if fault == "no-sd":
        assert result.log_files() == []
        assert _lit_since(result, "blue", result.snapshot_ms[0])
    else:
        logged = [r.event for r in read_log(result).records if r.kind == "E"]
        assert expected in logged  # on the card too


def test_corrupt_model_without_a_deployed_sha256_fails_in_the_interpreter(tmp_path):
    result = run(tmp_path, frames_of(MASK, 20), {"model_sha256": ""}, faults=Faults(corrupt_model=True))
    assert result.door_openings() == 0
    details = [d for e, d in result.errors() if e == "model_error"]
    assert details and "Failed to load model" in details[0]


@pytest.mark.parametrize("fault", ["camera@12", "inference@12", "camera@12-20", "inference@12-20"])
def test_fault_while_open_closes_the_door(tmp_path, fault):
    frames = frames_of(MASK, 40)
    result = run(tmp_path, frames, {"recover_ms": 200}, faults=Faults.parse([fault]))
    fault_at = result.snapshot_ms[12]
    assert relay_active_after(result, 0.0) and result.door_openings() >= 1  # it was open before
    kind = "camera_error" if fault.startswith("camera") else "error"
    assert kind in [e.event for e in read_log(result).records if e.kind == "E"]
    assert result.frames == 40
    if "-" in fault:  # a passing fault: the loop recovers and the door works again
        assert relay_active_after(result, result.snapshot_ms[21])
        closed = [t for t, level in result.relay.history if not result.relay_active(level) and t >= fault_at]
        assert closed and closed[0] < result.snapshot_ms[13]
    else:
        # closed within the faulty frame, and never open again while the fault lasts
        assert not relay_active_after(result, result.snapshot_ms[13])
        assert not result.relay_on()



def test_capture_memory_error_holds_the_door_closed_for_recover_ms(tmp_path):
    """img.save raising MemoryError (heap trouble on the board) stops capture and is a fault: the door
    stays closed for recover_ms even though every frame is a confident mask (debounce 1 would reopen
    the relay on the next frame if the fault window were not enforced)."""
    config = {"debounce_frames": 1, "recover_ms": 1000, "capture_mode": "every_n", "capture_every_n": 1}
    result = run(tmp_path, frames_of(MASK, 80), config, faults=Faults.parse(["capture@6"]))
    assert result.frames == 80 and result.exit == "frames"
    assert not [d for e, d in result.errors() if d.startswith("loop:")]  # caught where it happened
    (capture_error,) = [(t, d) for t, e, d in result.timed_events() if e == "capture_error"]
    assert "memory allocation failed" in capture_error[1] and "capture stopped" in capture_error[1]
    fault_at = capture_error[0]
    assert relay_active_after(result, 0.0)  # open before the fault
    closed_by = fault_at + 1  # released at once, then held closed for recover_ms
    reopened = [t for t, level in result.relay.history if result.relay_active(level) and t > fault_at]
    assert not result.relay_active(next(lv for t, lv in reversed(result.relay.history) if t <= closed_by))
    assert reopened and reopened[0] >= fault_at + 1000  # the door works again after recover_ms
    captured = sorted((result.sd_dir / result.config["capture_dir"]).rglob("*.jpg"))
    assert len(captured) == 6  # frames 0-5; capture stopped at the error


def test_a_capture_fault_in_the_frame_that_would_open_the_door_keeps_it_closed_and_the_log_true(tmp_path):
    """The 5th masked frame both completes the debounce and fails its capture: the door must not open,
    and the log must never say door_open after the door was closed (found in review: it did)."""
    config = {"debounce_frames": 5, "recover_ms": 1000, "capture_mode": "every_n", "capture_every_n": 1}
    result = run(tmp_path, frames_of(MASK, 80), config, faults=Faults.parse(["capture@4"]))
    doors = [e for _, e, _ in result.timed_events() if e in ("door_open", "door_close")]
    assert doors and all(a != b for a, b in zip(doors, doors[1:]))  # open and close alternate
    assert doors[0] == "door_open" and (doors[-1] == "door_open") == result.relay_on()
    (fault_at,) = [t for t, e, _ in result.timed_events() if e == "capture_error"]
    first_open = next(t for t, e, _ in result.timed_events() if e == "door_open")
    assert first_open >= fault_at + 1000  # not in the faulty frame: only after recover_ms


def test_card_full_closes_door_and_keeps_running(tmp_path):
    result = run(tmp_path, frames_of(MASK, 80), {"log_flush_records": 5}, faults=Faults.parse(["sd-full@2500"]))
    full = [(t, d) for t, e, d in result.timed_events() if e == "sd_full"]
    assert len(full) == 1 and "ENOSPC" in full[0][1]
    assert result.door_openings() >= 1  # the door worked while the card had room
    assert not relay_active_after(result, full[0][0])
    assert result.frames == 80
    assert _lit_since(result, "blue", full[0][0] + 30)
    size = sum(p.stat().st_size for p in result.log_files())
    assert size <= 2500
    parsed = read_log(result)
    assert parsed.records and len(parsed.problems) <= 1  # at most the line cut by the full card


def test_without_require_log_the_door_works_with_no_card(tmp_path):
    result = run(tmp_path, frames_of(MASK, 20), {"require_log": False}, faults=Faults(no_sd=True))
    assert result.door_openings() == 1
    assert _lit_since(result, "blue", result.snapshot_ms[0])  # still shows that nothing is logged


# --- the watchdog ---------------------------------------------------------------------------------

def test_watchdog_resets_a_hung_loop_and_the_door_is_released(tmp_path):
    result = run(tmp_path, frames_of(MASK, 40), {"wdt_timeout_ms": 1000}, faults=Faults(hang_at=20))
    assert result.watchdog_resets == 1 and result.boots == 2
    hang_at = result.snapshot_ms[20]
    released = [t for t, level in result.relay.history if level is None]
    assert released and hang_at < released[0] <= hang_at + 1000 + 50  # within the watchdog timeout
    headers = read_log(result).headers
    assert sorted({h.boot for h in headers}) == [1, 2]
    assert events(result, "watchdog") and events(result, "watchdog")[0].boot == 2
    assert result.frames == 40


def test_without_watchdog_a_hang_is_not_reset(tmp_path):
    result = run(tmp_path, frames_of(MASK, 30), {"wdt_enabled": False}, faults=Faults(hang_at=10))
    assert result.watchdog_resets == 0 and result.boots == 1


def test_watchdog_is_fed_every_frame(tmp_path):
    result = run(tmp_path, frames_of(MASK, 25))
    assert result.watchdog_feeds >= 25


# --- the SD log -----------------------------------------------------------------------------------

def test_log_cut_at_any_byte_keeps_every_complete_record(tmp_path):
    frames = sequence((MASK, 6), (NO_MASK, 3), (UNSURE, 3), (MASK, 8))
    result = run(tmp_path, frames, {"log_flush_records": 7, "capture_mode": "every_n", "capture_every_n": 4})
    (path,) = result.log_files()
    data = path.read_bytes()
    full = logread.parse_log(data, "full")
    assert not full.problems and len(full.records) >= len(frames)
    ends = [data.index(b"\n", r.offset) + 1 for r in full.records]

    def key(records):
        return [(r.kind, r.seq, r.ticks_ms, r.label, r.score, r.door, r.image, r.event) for r in records]

    for cut in range(len(data) + 1):
        expected = key([r for r, end in zip(full.records, ends) if end <= cut])
        assert key(logread.parse_log(data[:cut], "cut").records) == expected, cut
        # FAT may leave NUL padding after the cut: a NUL ends a line, nothing complete is lost
        padded = logread.parse_log(data[:cut] + b"\x00" * 64, "padded").records
        assert key(padded)[: len(expected)] == expected, cut
        assert len(padded) <= len(expected) + 1  # at most the line whose '\n' was lost


def test_log_rotates_by_size_and_seq_runs_across_parts(tmp_path):
    result = run(tmp_path, frames_of(MASK, 150), {"log_max_bytes": 4096})
    files = result.log_files()
    assert len(files) >= 2
    assert all(p.stat().st_size <= 4096 for p in files)
    parsed = read_log(result)
    assert not parsed.problems
    assert [h.part for h in parsed.headers] == list(range(len(files)))
    seqs = [r.seq for r in parsed.records]
    assert seqs == list(range(len(seqs)))
    assert sum(1 for r in parsed.records if r.kind == "F") == 150


def test_boot_counter_survives_runs_and_a_garbled_file(tmp_path):
    sd = tmp_path / "sd"
    run(tmp_path, frames_of(MASK, 3), sd_dir=sd)
    run(tmp_path, frames_of(MASK, 3), sd_dir=sd)
    assert (sd / "tinymask_boot.txt").read_text().strip() == "2"
    (sd / "tinymask_boot.txt").write_text("garbage")
    result = run(tmp_path, frames_of(MASK, 3), sd_dir=sd)
    boots = sorted({h.boot for h in read_log(result).headers})
    assert boots == [1, 2, 3]


def test_log_header_names_the_model_and_firmware(tmp_path):
    result = run(tmp_path, frames_of(MASK, 3), firmware_version="4.7.0")
    card = json.loads((bundle_dir() / "model_card.json").read_text())
    (header,) = read_log(result).headers
    assert header.model_sha256 == card["sha256"]
    assert header.omv_firmware == "4.7.0"
    assert header.format_version == 2 and header.boot == 1 and header.part == 0
    assert len(header.boot_id) == 16 and int(header.boot_id, 16) >= 0  # random per boot (log format 2)


# --- capture mode ---------------------------------------------------------------------------------

def test_capture_every_nth_frame_into_label_folders(tmp_path):
    result = run(tmp_path, sequence((MASK, 10), (NO_MASK, 10)), {"capture_mode": "every_n", "capture_every_n": 5})
    records = frame_records(result)
    saved = [r for r in records if r.image]
    assert [records.index(r) for r in saved] == [0, 5, 10, 15]
    for r in saved:
        assert r.image == f"captures/{r.label}/b000001-s{r.seq:06d}.jpg"
        with Image.open(result.sd_dir / r.image) as img:
            assert img.size == (200, 200) and img.format == "JPEG"
    assert {r.label for r in saved} == {"with_mask", "without_mask"}


def test_capture_low_confidence_frames_only(tmp_path):
    frames = sequence((UNSURE, 3), (MASK, 3), (NO_MASK, 3))
    result = run(tmp_path, frames, {"capture_mode": "low_confidence", "capture_low_confidence": 0.75})
    records = frame_records(result)
    assert [bool(r.image) for r in records] == [True] * 3 + [False] * 6


# --- board predictions are the host's int8 predictions ---------------------------------------------

def test_board_predictions_equal_host_int8_predictions_on_every_test_image(tmp_path):
    images = dataset_test_images()
    expected = host_scores(bundle_dir())
    rows = host_rows(bundle_dir())
    result = run(tmp_path, images, {"log_flush_records": 100, "presence_gate": False})
    assert len(result.predictions) == len(images)
    mismatches = [p.path for p in result.predictions if list(p.outputs) != rows[p.path]]
    assert mismatches == []
    records = frame_records(result)
    assert len(records) == len(images)
    for record, image in zip(records, images):
        assert abs(record.score - expected[image]) <= 0.00005 + 1e-9  # 4 decimals, half up
        assert record.label == host_label(rows[image])


# --- firmware families ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("version", "camera_api", "camera_call", "model_call"),
    [
        ("4.5.5", None, "sensor.reset", "tf.load"),  # legacy tf, single '/' filesystem
        ("4.6.0", None, "sensor.reset", "ml.Model"),  # ml, /sdcard, csi only an alias of sensor
        ("4.8.0", None, "csi.CSI", "ml.Model"),  # the csi.CSI class
        ("4.8.0", "sensor", "sensor.reset", "ml.Model"),
    ],
)
def test_firmware_families(tmp_path, version, camera_api, camera_call, model_call):
    result = run(tmp_path, frames_of(MASK, 8), firmware_version=version, camera_api=camera_api)
    assert result.calls.get(camera_call, 0) >= 1 and result.calls.get(model_call, 0) == 1
    other_model = {"tf.load": "ml.Model", "ml.Model": "tf.load"}[model_call]
    assert other_model not in result.calls
    assert result.door_openings() == 1
    assert (tmp_path / "sd" / "logs" / "b000001-p000.log").is_file()
    assert len(frame_records(result)) == 8


def test_legacy_firmware_without_card_does_not_log_to_flash(tmp_path):
    result = run(tmp_path, frames_of(MASK, 5), firmware_version="4.5.5", faults=Faults(no_sd=True))
    assert not (tmp_path / "flash" / "logs").exists()
    assert result.door_openings() == 0 and result.frames == 5


# --- configuration -----------------------------------------------------------------------------------

def bundle_label_config() -> dict:
    """The config keys that describe the reference bundle's outputs (what tools.deploy writes)."""
    card = json.loads((bundle_dir() / "model_card.json").read_text())
    keys = {"labels": card["labels"], "output_kind": card["output_kind"], "positive_label": card["positive_label"]}
    if "none_label" in card:
        keys["none_label"] = card["none_label"]
    return keys


def test_unreadable_config_logs_an_error_and_runs_on_defaults(tmp_path):
    result = run(tmp_path, frames_of(MASK, 8), config_text="{ not json")
    errors = events(result, "config_error")
    assert errors and "not valid JSON" in errors[0].detail
    if bundle_label_config()["labels"] == ["without_mask", "with_mask"]:
        assert result.door_openings() == 1  # defaults: debounce 5, threshold 0.8
    else:  # the defaults describe a 2-class model: the labels file disagrees, so no model, door closed
        assert result.door_openings() == 0 and not relay_active_after(result, 0)
        assert any("labels" in e.detail for e in events(result, "model_error"))


def test_bad_values_are_each_logged_and_replaced(tmp_path):
    result = run(tmp_path, frames_of(MASK, 4), config_text=json.dumps({"threshold": 2, "open_sesame": 1}))
    details = sorted(e.detail for e in events(result, "config_error"))
    assert len(details) == 2 and "open_sesame" in details[0] and "threshold" in details[1]


def test_unknown_relay_pin_drives_nothing(tmp_path):
    result = run(tmp_path, frames_of(MASK, 40), config_text=json.dumps({**bundle_label_config(), "relay_pin": "P99"}))
    assert result.pins == {}
    assert "relay_pin" in events(result, "config_error")[0].detail
    assert _red_blinks(result) >= 2
    # no relay, no door: the log never records an opening that did not happen
    records = frame_records(result)
    assert len(records) == 40 and {r.door for r in records} == {"closed"}
    assert events(result, "door_open") == []


# --- the simulator itself -------------------------------------------------------------------------------

def test_a_run_leaves_sys_modules_alone(tmp_path):
    import time

    before = set(sys.modules)
    run(tmp_path, frames_of(MASK, 3))
    leaked = {"sensor", "csi", "machine", "pyb", "ml", "tf", "omv", "image", "door", "tmlog", "main"}
    assert not leaked & (set(sys.modules) - before)
    assert sys.modules["time"] is time and hasattr(time, "perf_counter")


@pytest.mark.parametrize("version", ["4.5.5", "4.6.0"])
def test_firmware_cannot_import_what_the_board_lacks(tmp_path, version):
    from host.sim.board import Board, Costs
    from host.sim.frames import FrameSource, list_frames
    from host.sim.runner import FirmwareLoader, make_modules

    board = Board(frames=FrameSource(list_frames(frames_of(MASK, 1))), storage_dirs=(tmp_path / "sd", tmp_path / "f"),
                  firmware_version=version, camera_api="sensor", faults=Faults(), costs=Costs(), frames_count=1,
                  time_limit_ms=1000)
    loader = FirmwareLoader(board, make_modules(board))
    for name in ("typing", "dataclasses", "pathlib"):
        with pytest.raises(ImportError):
            loader._import(name)
    if version == "4.5.5":
        with pytest.raises(ImportError):
            loader._import("ml")
        assert hasattr(loader._import("tf"), "load")
    else:
        assert not hasattr(loader._import("tf"), "load")  # tf is only an alias of ml from 4.5.6


# --- the firmware as deployed: .mpy bytecode where the camera imports it -----------------------------

@pytest.mark.parametrize(("version", "firmware_format", "suffix"),
                         [("4.6.0", "auto", ".mpy"), ("4.8.0", "mpy", ".mpy"), ("4.3.3", "auto", ".py"),
                          ("4.6.0", "py", ".py")])
def test_the_card_holds_the_firmware_as_tools_deploy_ships_it(tmp_path, version, firmware_format, suffix):
    from tools.payload import firmware_files, firmware_names

    card = tmp_path / "sd"
    card.mkdir()
    for name in firmware_names():  # a card used before, with the firmware in both forms
        (card / name).write_text("raise RuntimeError('a stale module ran')\n")
    result = run(tmp_path, frames_of(MASK, 6), firmware_version=version, firmware_format=firmware_format)
    modules = {p.stem for p in firmware_files()} - {"main"}
    assert {p.stem for p in card.glob(f"*{suffix}")} - {"main"} == modules
    assert not [p for p in card.iterdir() if p.stem in modules and p.suffix != suffix]
    # OpenMV boots only a main.py: on this flat card it is the door's source, whatever the modules' form
    assert (card / "main.py").read_bytes() == (FIRMWARE_DIR / "main.py").read_bytes() and not (card / "main.mpy").exists()
    assert result.door_openings() == 1 and len(frame_records(result)) == 6


def test_a_card_without_a_main_py_does_not_boot(tmp_path):
    from host.errors import UserError
    from host.sim.board import Board, Costs
    from host.sim.frames import FrameSource, list_frames
    from host.sim.runner import FirmwareLoader, make_modules
    from tools.mpy import compile_module

    board = Board(frames=FrameSource(list_frames(frames_of(MASK, 1))), storage_dirs=(tmp_path / "sd", tmp_path / "f"),
                  firmware_version="4.6.0", camera_api="sensor", faults=Faults(), costs=Costs(), frames_count=1,
                  time_limit_ms=1000)
    card = tmp_path / "card"
    card.mkdir()
    (card / "main.mpy").write_bytes(compile_module(FIRMWARE_DIR / "main.py"))
    with pytest.raises(UserError, match="no main.py to boot: OpenMV runs only a main.py at boot"):
        FirmwareLoader(board, make_modules(board), firmware_dir=card).load("main", as_main=True)


def test_mpy_firmware_on_a_camera_that_imports_no_v6_files_is_refused_in_one_line(tmp_path):
    from host.errors import UserError

    with pytest.raises(UserError, match="^--firmware-format mpy: .*version 5") as caught:
        run(tmp_path, frames_of(MASK, 1), firmware_version="4.3.3", firmware_format="mpy")
    assert "\n" not in str(caught.value)


def _loader(tmp_path, version: str):
    from host.sim.board import Board, Costs
    from host.sim.frames import FrameSource, list_frames
    from host.sim.runner import FirmwareLoader, make_modules
    from tools.payload import firmware_payload

    board = Board(frames=FrameSource(list_frames(frames_of(MASK, 1))), storage_dirs=(tmp_path / "sd", tmp_path / "f"),
                  firmware_version=version, camera_api="sensor", faults=Faults(), costs=Costs(), frames_count=1,
                  time_limit_ms=1000)
    card = tmp_path / "card"
    card.mkdir()
    for path in firmware_payload(tmp_path / "staging", compiled=True):
        (card / path.name).write_bytes(path.read_bytes())
    return board, card, FirmwareLoader(board, make_modules(board), firmware_dir=card)


def test_a_mpy_the_board_would_refuse_fails_as_on_the_board(tmp_path):
    board, card, loader = _loader(tmp_path, "4.6.0")
    data = bytearray((card / "door.mpy").read_bytes())
    data[1] = 5  # a .mpy of MicroPython 1.18 left on the card
    (card / "door.mpy").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="incompatible .mpy file"):
        loader._import("door")
    assert "door.mpy" in board.console[-1] and "version 5" in board.console[-1]
    assert loader.source("tmlog") == FIRMWARE_DIR / "tmlog.py"  # the others import: their .mpy is this source's
    assert loader._import("tmlog").DETAIL_MAX == 200


def test_a_mpy_that_is_not_the_firmware_compiled_cannot_be_simulated(tmp_path):
    from host.errors import UserError

    _, card, loader = _loader(tmp_path, "4.6.0")
    (card / "door.mpy").write_bytes((card / "door.mpy").read_bytes() + b"\0")
    with pytest.raises(UserError, match="door.mpy: not mpy-cross of firmware/door.py"):
        loader._import("door")


def test_a_py_beside_its_mpy_wins_as_micropythons_import_prefers_it(tmp_path):
    _, card, loader = _loader(tmp_path, "4.6.0")
    (card / "door.mpy").write_bytes(b"garbage")  # never read: door.py comes first
    (card / "door.py").write_text("WHO = 'the card source'\n")
    assert loader.source("door") == card / "door.py" and loader._import("door").WHO == "the card source"


def test_cli_runs_and_reports(tmp_path, capsys):
    from host.sim.cli import main

    frames = tmp_path / "frames"
    for label, kind in (("with_mask", MASK), ("without_mask", NO_MASK)):
        (frames / label).mkdir(parents=True)
        for i, path in enumerate(frames_of(kind, 4)):
            (frames / label / f"{i}.jpg").symlink_to(path)
    code = main(["--frames", str(frames), "--bundle", str(bundle_dir()), "--sd", str(tmp_path / "sd"),
                 "--frames-count", "12", "--config", "debounce_frames=2", "--fault", "inference@10",
                 "--firmware-format", "auto"])
    out = capsys.readouterr().out
    assert code == 0
    assert "12 frames" in out and "accuracy vs folder labels: 100.0%" in out and "error" in out
    assert (tmp_path / "sd" / "config.json").is_file() and (tmp_path / "sd" / "main.py").is_file()
    assert (tmp_path / "sd" / "door.mpy").is_file()


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    from host.errors import run_cli
    from host.sim.cli import main

    code = run_cli(main, ["--frames", str(tmp_path / "nowhere"), "--bundle", str(bundle_dir())])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "nowhere" in err[0]
    code = run_cli(main, ["--frames", str(dataset_test_images()[0]), "--bundle", str(bundle_dir()), "--fault", "meteor"])
    assert code == 2 and "unknown fault" in capsys.readouterr().err


def test_fault_ranges_parse():
    faults = Faults.parse(["camera@3-5", "sd-full@100", "no-sd"])
    assert faults.camera == FrameRange(3, 5) and 4 in faults.camera and 5 not in faults.camera
    assert faults.sd_free_bytes == 100 and faults.no_sd


def test_cli_accuracy_uses_the_label_the_firmware_logs():
    """The summary's accuracy judges each frame by firmware/infer.py's rule (softmax: the arg-max), not
    by a sigmoid cut of the first output."""
    from types import SimpleNamespace

    from host.sim.board import Prediction
    from host.sim.cli import accuracy

    labels = ["without_mask", "with_mask"]
    config = {"labels": labels, "positive_label": "with_mask", "output_kind": "softmax"}
    frames = [SimpleNamespace(path=f"f{i}.jpg", label=labels[i % 2]) for i in range(4)]
    outputs = [[0.7, 0.3], [0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]  # all four right by arg-max
    predictions = [Prediction(i, f"f{i}.jpg", out, 1) for i, out in enumerate(outputs)]
    assert accuracy(SimpleNamespace(config=config, predictions=predictions), frames) == (4, 4)
    sigmoid = {**config, "output_kind": "sigmoid"}
    scores = [Prediction(i, f"f{i}.jpg", [s], 1) for i, s in enumerate([0.2, 0.5, 0.49, 0.1])]
    assert accuracy(SimpleNamespace(config=sigmoid, predictions=scores), frames) == (3, 4)


@pytest.mark.parametrize(("version", "camera_api"), [("4.8.0", None), ("4.8.0", "sensor")])
def test_fixed_camera_settings_reach_either_camera_api(tmp_path, version, camera_api):
    config = {"camera_fixed_gain": True, "camera_gain_db": 6.0, "camera_fixed_exposure": True,
              "camera_exposure_us": -1, "camera_fixed_whitebal": True}
    result = run(tmp_path, frames_of(MASK, 2), config, firmware_version=version, camera_api=camera_api)
    assert result.calls.get("auto_gain(False, 6.0)") == 1
    assert result.calls.get("auto_exposure(False, -1)") == 1  # lock what auto-exposure settled on
    assert result.calls.get("auto_whitebal(False)") == 1
    untouched = run(tmp_path / "b", frames_of(MASK, 2), firmware_version=version, camera_api=camera_api)
    assert not any(name.startswith("auto_") for name in untouched.calls)


@pytest.mark.parametrize("spec, needle", [("camera@5-2", "START < END"), ("camera@", "must be a whole number"),
                                          ("sd-full@-100", "0 or more"), ("hang@-5", "0 or more"),
                                          ("no-sd@7", "takes no '@' value"), ("camera@x", "must be a whole number")])
def test_a_malformed_fault_is_one_line_not_a_silent_no_op(spec, needle):
    """Found in review: camera@5-2 injected nothing and no-sd@7 ignored its value, with no word."""
    with pytest.raises(UserError, match=needle):
        Faults.parse([spec])


def test_simulate_refuses_bad_counts_and_places_before_running(tmp_path, capsys):
    from host.sim import cli

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (64, 64), (120, 90, 80)).save(frames / "a.jpg")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv, needle in ((["--max-boots", "0"], "--max-boots 0"), (["--frames-count", "0"], "--frames-count 0"),
                         (["--flash", str(afile)], "is a file"), (["--sd", "models/tinymask"], "is the bundle folder")):
        assert run_cli(cli.main, ["--frames", str(frames), *argv]) == 2
        assert needle in capsys.readouterr().err


def test_hidden_files_and_broken_links_in_a_frames_folder_are_not_frames(tmp_path, capsys):
    from host.sim.frames import list_frames

    (tmp_path / "with_mask").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "with_mask" / "a.jpg")
    Image.new("RGB", (64, 64)).save(tmp_path / "with_mask" / "._a.jpg")  # macOS resource fork
    (tmp_path / "with_mask" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    frames = list_frames(tmp_path)
    assert [f.path.name for f in frames] == ["a.jpg"] and "1 broken link" in capsys.readouterr().err
