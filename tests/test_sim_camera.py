"""The simulator's fake camera refuses what OpenMV's camera code refuses (host/sim/camera.py)."""

from __future__ import annotations

import pytest
from PIL import Image

from host.sim import Faults
from host.sim import camera as sim_camera


def _board(tmp_path, version: str, board_name: str = "openmv_h7", camera_api: str = "sensor"):
    from host.sim.board import Board, Costs
    from host.sim.frames import FrameSource, list_frames

    frame = tmp_path / "frame.png"
    Image.new("RGB", (320, 240), (90, 60, 40)).save(frame)
    return Board(frames=FrameSource(list_frames([frame])), storage_dirs=(None, tmp_path), firmware_version=version,
                 camera_api=camera_api, faults=Faults(), costs=Costs(), frames_count=10, time_limit_ms=1e9,
                 board_name=board_name)


def _sensor_camera(board, window: int):
    """firmware/camera.py on the sensor module (every firmware)."""
    sensor = sim_camera.make_sensor(board, sim_camera._Camera(board))
    sensor.reset()
    sensor.set_pixformat(sensor.RGB565)
    sensor.set_framesize(sensor.QVGA)
    sensor.set_windowing((window, window))
    return sensor.snapshot, lambda: sensor.skip_frames(time=200)


def _csi_camera(board, window: int):
    """firmware/camera.py on the csi.CSI class (4.8+)."""
    cam_state = sim_camera._Camera(board)
    csi = sim_camera.make_csi(board, cam_state, True, sim_camera.make_sensor(board, cam_state))
    cam = csi.CSI()
    cam.reset()
    cam.pixformat(csi.RGB565)
    cam.framesize(csi.QVGA)
    cam.window((window, window))
    return cam.snapshot, lambda: cam.snapshot(time=200)


def test_stm32_dcmi_fits_is_the_boards_dma_rule():
    """QVGA RGB565, centred at x = 160 - w / 2: an odd x crops a word off the 640-byte line and
    636 * h must then be a multiple of 16 (ports/stm32/omv_csi.c v4.8.1, sensor.c v4.5.5)."""
    fits = [w for w in range(32, 241) if sim_camera.stm32_dcmi_fits(320, 160 - w // 2, w, w)]
    assert fits == [w for w in range(32, 241) if w % 4 in (0, 1)]
    assert sim_camera.stm32_dcmi_fits(320, 60, 200, 200) and not sim_camera.stm32_dcmi_fits(320, 59, 202, 202)


@pytest.mark.parametrize(("version", "api"), [("4.5.5", "sensor"), ("4.6.0", "sensor"), ("4.8.1", "sensor"),
                                              ("4.8.1", "csi")])
@pytest.mark.parametrize("window", [202, 203, 34, 238])
def test_an_h7_window_the_dcmi_cannot_capture_fails_every_capture(tmp_path, version, api, window):
    board = _board(tmp_path, version)
    snapshot, settle = (_csi_camera if api == "csi" else _sensor_camera)(board, window)
    for capture in (settle, snapshot):
        with pytest.raises(RuntimeError, match=r"^Frame size is not supported or is not set\.$"):
            capture()
    assert board.snapshots == 0


@pytest.mark.parametrize(("board_name", "window"), [("openmv_h7", 200), ("openmv_h7", 201), ("openmv_h7", 240),
                                                    ("openmv_h7_plus", 33), ("openmv_rt1062", 202)])
def test_windows_the_camera_can_capture_still_work(tmp_path, board_name, window):
    board = _board(tmp_path, "4.6.0", board_name)
    snapshot, settle = _sensor_camera(board, window)
    settle()
    img = snapshot()
    assert (img.width(), img.height()) == (window, window)


def test_the_h7_plus_has_the_same_dcmi_rule(tmp_path):
    board = _board(tmp_path, "4.8.1", "openmv_h7_plus", camera_api="csi")
    snapshot, _ = _csi_camera(board, 198)
    with pytest.raises(RuntimeError, match="Frame size is not supported"):
        snapshot()


def _still_frame(tmp_path):
    frame = tmp_path / "frame.png"
    Image.new("RGB", (320, 240), (90, 60, 40)).save(frame)
    return frame


@pytest.mark.parametrize(("version", "window", "refused", "skip_ms"), [
    ("4.6.0", 202, True, 2000), ("4.8.1", 203, True, 2000), ("4.5.5", 238, True, 0), ("4.8.1", 34, True, 0),
    ("4.6.0", 201, False, 2000), ("4.5.5", 200, False, 0)])
def test_a_window_the_h7_cannot_capture_falls_back_to_the_default_window(tmp_path, version, window, refused, skip_ms):
    """A hand-edited config.json camera_window (tmconfig allows 32 .. 240) the H7's DCMI refuses:
    the camera's first capture fails (even with camera_skip_ms 0, firmware/camera.py captures
    once), the firmware logs one config_error naming the key and the fix, and the door runs on
    the default 200 px window instead of retrying the camera forever."""
    from simboard import run

    result = run(tmp_path, [_still_frame(tmp_path)] * 3, {"camera_window": window, "camera_skip_ms": skip_ms},
                 firmware_version=version, time_limit_ms=20_000)
    assert result.frames == 3
    assert not [e for e in result.errors() if e[0] != "config_error"]
    notes = [detail for event, detail in result.errors() if event == "config_error"]
    if refused:
        assert len(notes) == 1
        assert notes[0].startswith(f"camera_window {window} refused by the camera (Frame size is not supported")
        assert "running with 200" in notes[0] and notes[0].endswith("(tools.deploy --set camera_window=N)")
    else:
        assert notes == []


def test_a_dead_camera_is_reported_as_a_camera_error_not_as_its_window(tmp_path):
    """The fallback only explains a window the camera refused: a camera that fails at the default
    window too raises that error, and the door stays closed with camera_error retries."""
    from simboard import run

    result = run(tmp_path, [_still_frame(tmp_path)] * 3, {"camera_window": 202}, firmware_version="4.6.0",
                 time_limit_ms=10_000, faults=Faults(camera_init=True))
    assert result.frames == 0 and result.door_openings() == 0
    events = [event for event, _ in result.errors()]
    assert "config_error" not in events
    assert [d for e, d in result.errors() if e == "camera_error"][0] == "init: Sensor control failed."
