"""The firmware's pure logic in CPython: door state machine, log lines, config validation, capture
and model checks. (tests/test_micropython.py runs the same modules under a real MicroPython.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.field import logread
from host.sim.bundle import firmware_module
from host.sim.clock import TICKS_PERIOD
from host.sim.clock import ticks_diff as sim_ticks_diff

door = firmware_module("door")
tmlog = firmware_module("tmlog")
tmconfig = firmware_module("tmconfig")
capture = firmware_module("capture")
infer = firmware_module("infer")
REPO = Path(__file__).resolve().parents[1]

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
steps = st.lists(st.tuples(scores, st.integers(min_value=1, max_value=400)), max_size=80)


# --- door -------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(steps, st.floats(min_value=0.5, max_value=0.99), st.integers(1, 6), st.integers(100, 2000),
       st.integers(0, TICKS_PERIOD - 1))
def test_door_invariants(frames, threshold, debounce, open_ms, start):
    d = door.Door(threshold, debounce, open_ms)
    now = start
    history = []
    for score, dt in frames:
        now = (now + dt) % TICKS_PERIOD
        was = d.state
        event = d.update(score, now)
        history.append(score)
        assert d.state in door.STATES
        if d.state == door.OPENING:
            # opening only after `debounce` confident mask frames in a row, from closed
            assert was == door.CLOSED and event == door.DOOR_OPEN
            assert len(history) >= debounce and all(s >= threshold for s in history[-debounce:])
        if score <= 1 - threshold:
            assert d.state == door.CLOSED  # a confident no-mask closes at once
        if d.relay_on():
            assert door.ticks_diff(now, d.since) < open_ms  # never open past open_ms since a mask
        if event == door.DOOR_CLOSE:
            assert was != door.CLOSED and d.state == door.CLOSED


def test_door_transitions_and_timer():
    d = door.Door(0.8, 2, 500)
    assert d.update(0.9, 0) is None and d.state == "closed"
    assert d.update(0.9, 10) == "door_open" and d.state == "opening"
    assert d.update(0.5, 20) is None and d.state == "open"  # unsure keeps it open
    assert d.update(0.95, 400) is None and d.state == "holding"  # a mask frame restarts the timer
    assert d.update(0.5, 899) is None and d.state == "holding"
    assert d.update(0.5, 900) == "door_close" and d.reason == "timeout"
    assert d.update(0.9, 910) is None and d.update(0.9, 920) == "door_open"
    assert d.update(None, 930) == "door_close" and d.reason == "fault"
    assert d.force_closed("stop") is None


def test_no_mask_wins_when_threshold_is_below_half():
    d = door.Door(0.3, 1, 500)
    assert d.classify(0.5) == "no_mask" and d.classify(0.75) == "mask"


@given(st.integers(0, TICKS_PERIOD - 1), st.integers(-(TICKS_PERIOD // 2), TICKS_PERIOD // 2 - 1))
def test_ticks_diff_matches_micropython_arithmetic(a, delta):
    b = (a + delta) % TICKS_PERIOD
    assert door.ticks_diff(b, a) == delta == sim_ticks_diff(b, a)


# --- log lines -----------------------------------------------------------------------------------------

text = st.text(max_size=30)
counts = st.integers(0, 10**7)


@given(st.integers(0, 2**31), counts, st.sampled_from(["with_mask", "without_mask"]),
       st.one_of(st.none(), scores), st.one_of(st.none(), counts), st.one_of(st.none(), counts),
       st.sampled_from(door.STATES), st.one_of(st.none(), st.just("captures/with_mask/b000001-s000002.jpg")))
def test_frame_line_is_what_the_host_writer_writes(seq, ticks, label, score, infer_ms, frame_ms, state, image):
    ticks %= TICKS_PERIOD
    line = tmlog.format_line(tmlog.frame_body(seq, ticks, label, score, infer_ms, frame_ms, state, image))
    logged = None if score is None else float(tmlog.score_text(score))
    assert line == logread.format_frame(seq, ticks, label, logged, infer_ms, frame_ms, state, image)
    (record,) = logread.parse_log(line.encode()).records
    assert record.seq == seq and record.door == state and record.image == image


@given(st.integers(0, 2**31), counts, st.sampled_from(tmlog.EVENTS), text)
def test_event_line_is_what_the_host_writer_writes(seq, ticks, event, detail):
    line = tmlog.format_line(tmlog.event_body(seq, ticks, event, detail))
    assert line == logread.format_event(seq, ticks, event, detail)
    assert re.fullmatch(r"E,[^,*\n]*,[^,*\n]*,[^,*\n]*,[^,*\n]*\*[0-9a-f]{2}\n", line)
    (record,) = logread.parse_log(line.encode()).records
    assert record.event == event


@given(text, st.integers(0, 999999), st.integers(0, 999), text, text, text, text)
def test_header_line_is_what_the_host_writer_writes(device, boot, part, sha, fw, omv, board):
    line = tmlog.format_line(tmlog.header_body(device, boot, part, sha, fw, omv, board))
    assert line == logread.format_header(device, boot, part, sha, fw, omv, board)
    assert logread.parse_log(line.encode()).headers[0].boot == boot


def test_scores_round_half_up_on_every_int8_level():
    from decimal import ROUND_HALF_UP, Decimal

    for q in range(256):  # a sigmoid int8 output dequantizes to q / 256
        score = q / 256
        expected = Decimal(q) / Decimal(256)
        assert tmlog.score_text(score) == str(expected.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    assert tmlog.score_text(0.90625) == "0.9063" and tmlog.score_text(1.0) == "1.0000"


def test_names_follow_the_format_page():
    assert tmlog.log_name(12, 0) == "b000012-p000.log"
    assert tmlog.capture_name("captures", "with_mask", 12, 345) == "captures/with_mask/b000012-s000345.jpg"
    assert tmlog.EVENTS == logread.EVENTS and door.STATES == logread.DOOR_STATES


# --- config ---------------------------------------------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)


@given(st.dictionaries(st.sampled_from(sorted(tmconfig.SCHEMA) + ["bogus"]), json_values, max_size=8))
def test_validate_never_raises_and_always_gives_a_full_valid_config(raw):
    config, errors = tmconfig.validate(raw)
    assert set(config) == set(tmconfig.SCHEMA)
    again, again_errors = tmconfig.validate(config)
    assert again == config and again_errors == []
    assert all(isinstance(e, str) and "\n" not in e for e in errors)


def test_a_label_or_key_with_a_newline_still_gives_one_line_errors():
    """Found by the property above: a label of "\n" put a newline in its error, splitting the log line."""
    config, errors = tmconfig.validate({"labels": ["ok", "a\nb"], "bad\nkey": 1})
    assert config["labels"] == tmconfig.SCHEMA["labels"][0]
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert any("'a\\nb'" in e for e in errors) and any(e.startswith("'bad\\nkey'") for e in errors)


@pytest.mark.parametrize("key, value", [
    ("capture_dir", "cap,x"), ("capture_dir", "../../outside"), ("log_dir", "logs/../logs"), ("log_dir", "/flash"),
    ("log_dir", "logs//x"), ("model_path", "..\\x.tflite"), ("labels_path", "a b.txt"), ("capture_dir", ""),
    ("device_id", "d" * 65), ("board", "b" * 4100), ("labels", [f"l{i}" for i in range(17)])])
def test_a_path_that_could_leave_its_root_or_break_a_log_record_and_overlong_text_are_refused(key, value):
    """Found in review: a comma in capture_dir split every captured frame's record, '..' let the log
    leave its folder, and a 4,100-character device_id overran the log buffer so the camera never started."""
    config, errors = tmconfig.validate({key: value})
    assert config[key] == tmconfig.SCHEMA[key][0]
    assert len(errors) == 1 and errors[0].startswith(key + ":") and "\n" not in errors[0]


@pytest.mark.parametrize("value", ["captures", "sd/caps", "door-2.frames", "a_b/c-d"])
def test_plain_relative_paths_are_kept(value):
    assert tmconfig.validate({"capture_dir": value, "log_dir": value}) == (
        {**tmconfig.defaults(), "capture_dir": value, "log_dir": value}, [])


@pytest.mark.parametrize("raw, none_label", [
    ({"none_label": "without_mask"}, "none"),  # a sigmoid class: unmasked faces would not close the door
    ({"none_label": "with_mask"}, "none"),
    ({"labels": ["none", "with_mask"], "none_label": "none"}, "nobody"),
    ({"output_kind": "softmax", "labels": ["without_mask", "with_mask", "none"]}, "none"),  # the none class: fine
    ({"positive_label": "none", "labels": ["without_mask", "none"], "none_label": "none"}, "nobody")])
def test_none_label_follows_the_hosts_deploy_rules(raw, none_label):
    config, errors = tmconfig.validate(raw)
    assert config["none_label"] == none_label
    assert (errors == []) == (raw.get("none_label") in (None, none_label) and "positive_label" not in raw)
    assert tmconfig.validate(config) == (config, [])


def test_validate_reports_each_bad_key_and_keeps_defaults():
    config, errors = tmconfig.validate({"threshold": 1.5, "debounce_frames": "3", "relay_pin": "P1", "x": 1})
    assert config["threshold"] == tmconfig.SCHEMA["threshold"][0] and config["relay_pin"] == "P1"
    assert sorted(e.split(":")[0] for e in errors) == ["debounce_frames", "threshold", "x"]


def test_load_gives_defaults_and_an_error_for_missing_or_broken_files(tmp_path):
    config, errors = tmconfig.load(str(tmp_path / "none.json"))
    assert config == tmconfig.defaults() and "missing" in errors[0]
    (tmp_path / "bad.json").write_text("{")
    assert "not valid JSON" in tmconfig.load(str(tmp_path / "bad.json"))[1][0]
    (tmp_path / "ok.json").write_text(json.dumps({"open_ms": 1234}))
    assert tmconfig.load(str(tmp_path / "ok.json")) == ({**tmconfig.defaults(), "open_ms": 1234}, [])


def test_labels_that_would_name_bad_folders_are_refused():
    _, errors = tmconfig.validate({"labels": ["../x", "y"]})
    assert errors and "labels" in errors[0]


def test_docs_list_every_config_key():
    docs = (REPO / "docs" / "firmware.md").read_text()
    missing = [key for key in tmconfig.SCHEMA if f"`{key}`" not in docs]
    assert missing == []


# --- capture and model checks -----------------------------------------------------------------------------

@given(st.integers(0, 10**6), scores, st.integers(1, 100), st.floats(0.5, 1.0))
def test_capture_decision(index, score, every_n, low):
    assert capture.wanted("off", index, score, every_n, low) is False
    assert capture.wanted("every_n", index, score, every_n, low) == (index % every_n == 0)
    assert capture.wanted("low_confidence", index, score, every_n, low) == (max(score, 1 - score) < low)


def test_model_input_checks():
    assert infer.check_input("b", (1, 32, 32, 3), 1 / 255, -128) is None
    assert "int8" in infer.check_input("f", (1, 32, 32, 3), None, None)
    assert "1xHxWx3" in infer.check_input("b", (1, 32, 32, 1), 1 / 255, -128)
    assert "quantization" in infer.check_input("b", (1, 32, 32, 3), 1 / 128, 0)
    cfg = tmconfig.defaults()
    assert infer.check_labels(cfg, None) is None and infer.check_labels(cfg, list(cfg["labels"])) is None
    assert "does not match" in infer.check_labels(cfg, list(reversed(cfg["labels"])))


def test_file_sha256(tmp_path):
    import hashlib

    data = bytes(range(256)) * 50
    (tmp_path / "m.tflite").write_bytes(data)
    assert infer.file_sha256(str(tmp_path / "m.tflite")) == hashlib.sha256(data).hexdigest()


@given(st.integers(0, 2**31), counts, st.sampled_from(tmlog.EVENTS), st.text(min_size=150, max_size=600))
def test_long_event_details_are_cut_the_same_by_both_writers(seq, ticks, event, detail):
    line = tmlog.format_line(tmlog.event_body(seq, ticks, event, detail))
    assert line == logread.format_event(seq, ticks, event, detail)
    (record,) = logread.parse_log(line.encode()).records
    assert len(record.detail) == min(len(detail), tmlog.DETAIL_MAX) == min(len(detail), logread.DETAIL_MAX)


def test_log_writes_a_line_longer_than_its_buffer(tmp_path):
    log_module = firmware_module("tmlog", {})
    log_module.ticks_ms = lambda: 1000
    log_module.ticks_diff = sim_ticks_diff
    console = []
    log = log_module.Log(str(tmp_path), tmconfig.defaults(), 1, ("dev", "-", "0.1.0", "4.6.0", "openmv_h7"),
                         console.append)
    log.frame(1000, "with_mask", 0.9, 14, 33, "closed", "-")
    log.event(1001, "error", "x" * 10_000)  # cut to DETAIL_MAX
    huge = "E,%d,1002,error,%s" % (log.seq, "y" * (2 * log_module.BUFFER_BYTES))
    log.seq += 1
    log._add(huge, 1002, False)  # no formatter makes one this long; the writer must still cope
    log.frame(1003, "with_mask", 0.9, 14, 33, "closed", "-")
    log.close()
    assert log.status == "ok" and log.dropped == 0
    (path,) = (tmp_path / "logs").glob("*.log")
    parsed = logread.parse_log(path.read_bytes())
    assert parsed.problems == []
    assert [len(r.detail or "") for r in parsed.records if r.kind == "E"] == [tmlog.DETAIL_MAX, 2 * tmlog.BUFFER_BYTES]
    assert [r.seq for r in parsed.records] == [0, 1, 2, 3]


frame_args = st.tuples(st.sampled_from(["with_mask", "without_mask", "none", "-"]),
                       st.one_of(st.none(), scores, st.floats(-1.5, 1.5)), st.one_of(st.none(), counts),
                       st.one_of(st.none(), counts), st.sampled_from(door.STATES), st.integers(0, TICKS_PERIOD - 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(frame_args, min_size=1, max_size=60), st.integers(0, 2**31 - 100), st.integers(4096, 9000))
def test_frames_written_in_place_are_byte_for_byte_format_line(tmp_path_factory, frames, first_seq, max_bytes):
    """The frame loop writes a record straight into the log buffer (no string per frame): the file must hold
    exactly the lines format_line(frame_body(...)) gives, across flushes and rotations to new parts."""
    folder = tmp_path_factory.mktemp("card")
    log_module = firmware_module("tmlog", {})
    log_module.ticks_ms = lambda: 0
    log_module.ticks_diff = sim_ticks_diff
    cfg = {**tmconfig.defaults(), "log_max_bytes": max_bytes, "log_flush_records": 7}
    log = log_module.Log(str(folder), cfg, 3, ("dev", "-", "0.1.0", "4.6.0", "openmv_h7"), lambda line: None)
    log.seq = first_seq
    expected, last = [], None
    for label, score, infer_ms, frame_ms, state, ticks in frames:
        ticks = ticks if last is None or sim_ticks_diff(ticks, last) >= 0 else last  # Log.forward's rule
        last = ticks
        expected.append(tmlog.format_line(tmlog.frame_body(log.seq, ticks, label, score, infer_ms, frame_ms,
                                                           state, "-")))
        log.frame(ticks, label, score, infer_ms, frame_ms, state, "-")
    log.close()
    parts = sorted((folder / "logs").glob("*.log"))
    written = "".join(line for p in parts for line in p.read_text().splitlines(keepends=True)
                      if not line.startswith("H,"))
    assert written == "".join(expected)
    assert all(p.stat().st_size <= max_bytes + tmlog.RECORD_MAX for p in parts[:-1])


class _NoListArray:
    """An ndarray-like output that fails if the sigmoid path builds a list (flatten/tolist allocate)."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape

    def __getitem__(self, index):
        return self.array[index]

    def flatten(self):
        raise AssertionError("flatten() on the sigmoid path")


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1, 1)])
@pytest.mark.parametrize("score, label", [(0.75, "with_mask"), (0.25, "without_mask"), (0.5, "with_mask")])
def test_sigmoid_prediction_reads_the_value_without_a_list(shape, score, label):
    import numpy as np

    cfg = tmconfig.defaults()
    model = infer.Model(cfg)
    output = np.full(shape, score, dtype=np.float32)
    model.net = type("Net", (), {"predict": lambda self, inputs: [_NoListArray(output)]})()
    model.api = "ml"
    for _ in range(2):  # the index is built on the first frame, reused after
        assert model.predict(object()) == score and model.label == label


def test_a_bundle_named_as_long_as_build_allows_deploys_and_a_trailing_slash_is_the_folder():
    """Found in review: build takes 64-character names, and the path rule allowed 40 per part."""
    name = "d" * 64 + ".tflite"
    config, errors = tmconfig.validate({"model_path": name, "labels_path": "d" * 64 + ".txt", "log_dir": "logs/"})
    assert errors == [] and config["model_path"] == name and config["log_dir"] == "logs"
    assert tmconfig.validate(config) == (config, [])
