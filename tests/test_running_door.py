"""tools.deploy and tools.pull against a camera whose door program runs with its watchdog.

The fake camera (tests/fakedevice.py, door=True) runs the deployed firmware main.py (tests/fakedoor.py)
at every boot. main.py starts machine.WDT(timeout=wdt_timeout_ms, 5000 by default) and feeds it every
frame; Ctrl-C, the raw REPL and soft resets leave the watchdog running (docs/openmv-platform.md item 11),
and when nothing feeds it the board reboots: the USB connection drops and main.py starts again. The
board's clock runs TIME_SCALE times faster than the host's, so a copy of the reference model
(about 6 s of host time through mpremote's polling reader) lasts over 10 s on the board.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
from fakedevice import FakeDevice
from test_deploy import REFERENCE, make_bundle, running
from test_pull import archived, write_card

from host.errors import run_cli
from tools import deploy, pull
from tools.payload import firmware_module
from tools.remote import WATCHDOG_MS, Remote

TIME_SCALE = 2.0
DOOR_WDT_MS = 5000  # firmware/tmconfig.py wdt_timeout_ms default, what main.py starts


def wait_for(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def door_running(device) -> bool:
    """main.py runs and has started its own watchdog (the firmware's last start-up step)."""
    return (device.program is not None and device.program.running
            and device.board.wdt_timeout == DOOR_WDT_MS)


def watchdog_resets(device) -> int:
    return sum(cause == "watchdog" for cause, _ in device.resets)


def frames_logged(device) -> int:
    """F records the door wrote in its current boot (it is classifying frames)."""
    logs = sorted((device.board.root / "sdcard" / "logs").glob("*.log"))
    return sum(line.startswith("F,") for line in logs[-1].read_text().splitlines()) if logs else 0


def run(main, argv, capsys):
    code = run_cli(main, argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def door(tmp_path, capsys):
    """A camera whose door runs a first deploy (a stand-in model: the door starts, the model fails
    to load, the loop runs and feeds its watchdog)."""
    stand_in = make_bundle(tmp_path / "old", model=b"old model " * 9000)
    with FakeDevice(tmp_path / "camera", door=True, time_scale=TIME_SCALE) as device:
        code, _, err = run(deploy.main, ["--board", "openmv_h7", "--port", device.port, "--bundle", str(stand_in)], capsys)
        assert code == 0, err
        assert wait_for(lambda: door_running(device)), device.console()
        yield device


def test_deploy_over_a_running_door_whose_copy_outlasts_its_watchdog(door, capsys):
    if not (REFERENCE / "model_card.json").is_file():
        pytest.skip("needs the reference bundle models/tinymask")
    copies_before = len(door.resets)
    code, out, err = run(deploy.main, ["--board", "openmv_h7", "--port", door.port, "--bundle", str(REFERENCE)], capsys)
    assert code == 0, err
    opened, closed = door.board.file_times["/sdcard/tmset/000002/tinymask.tflite"]
    assert closed - opened > DOOR_WDT_MS  # the model copy alone outlasted the door's watchdog
    print(f"model copy {closed - opened:.0f} ms on the camera's clock, door watchdog {DOOR_WDT_MS} ms, "
          f"{door.board.wdt_feeds} feeds, {watchdog_resets(door)} watchdog resets")
    assert watchdog_resets(door) == 0
    assert [cause for cause, _ in door.resets[copies_before:]] == ["machine.reset"]  # deploy's own, at the end
    assert ("wdt", WATCHDOG_MS) in door.events  # the tool re-armed the running watchdog, and fed it
    # the new door runs: its own watchdog again, the reference model loaded, frames classified
    assert wait_for(lambda: door_running(door) and frames_logged(door) >= 3), door.console()
    assert not [line for line in door.console() if "model_error" in line]
    assert door.program.set_folder == "/sdcard/tmset/000002"  # the loader started the new set


def test_without_feeding_the_same_deploy_is_cut_by_the_watchdog(door, capsys, monkeypatch):
    """The test above can fail: a tool that does not feed the watchdog loses the board mid-copy."""
    if not (REFERENCE / "model_card.json").is_file():
        pytest.skip("needs the reference bundle models/tinymask")
    monkeypatch.setattr(deploy, "Remote", functools.partial(Remote, keep_fed=False))
    old_model = running(door.board.root / "sdcard")["tinymask.tflite"]
    code, _, err = run(deploy.main, ["--board", "openmv_h7", "--port", door.port, "--bundle", str(REFERENCE)], capsys)
    assert code == 2 and "lost the connection" in err
    assert watchdog_resets(door) >= 1
    assert running(door.board.root / "sdcard")["tinymask.tflite"] == old_model  # the old set, whole
    assert wait_for(lambda: door_running(door)), door.console()  # the old door runs again
    # (deploy then resets the camera it reached again, so the last boot is a normal one)


def test_pull_from_a_running_door(door, tmp_path, capsys):
    write_card(door.board.root / "sdcard", device_id="door-7", boots=6, frames=12)
    started = time.monotonic()
    archive = tmp_path / "archive"
    code, out, err = run(pull.main, ["--port", door.port, "--to", str(archive), "--device", "door-7"], capsys)
    took_ms = (time.monotonic() - started) * 1000 * TIME_SCALE
    assert code == 0, err
    assert took_ms > DOOR_WDT_MS and watchdog_resets(door) == 0
    pulled = archived(archive, "door-7")
    assert sum(name.startswith("captures/") for name in pulled) == 6 * 12
    active = firmware_module("tmboot").choose(str(door.board.root / "sdcard"))  # config.json is the running set's
    assert pulled["config.json"] == (Path(active) / "config.json").read_bytes()
    assert wait_for(lambda: door_running(door)), door.console()  # pull resets the camera: the door runs again
