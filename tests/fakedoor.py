"""The door program on the fake camera: the deployed firmware main.py, run from the card's files.

The fake camera (tests/fakedevice.py) starts it at every hard boot, as OpenMV runs main.py once after a
cold boot (docs/openmv-platform.md item 8). The firmware runs on host/sim's board modules (sensor,
ml, image, pyb, os, time ...), pointed at the fake's own folders, with three of the fake's own:
`machine.WDT` (its watchdog runs on the fake's clock and survives Ctrl-C and soft resets),
`machine.reset` (a real reboot of the fake) and `machine.reset_cause`. Ctrl-C reaches the program
as KeyboardInterrupt at its next board call, which is where MicroPython would deliver it too (at
the next bytecode), so main.py's `finally` (relay released, log flushed) runs as on the board.
"""

from __future__ import annotations

import threading
import time as host_time
from pathlib import Path

FRAME_REAL_S = 0.02  # host time one camera frame takes, so an idle door does not spin a core


class DoorStopped(BaseException):
    """The fake board is rebooting: the program dies where it is (nothing is flushed)."""


def write_frames(folder: Path) -> Path:
    """Two plain pictures for the camera to look at (the door only has to run, not to open)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, shade in enumerate((90, 160)):
        Image.new("RGB", (240, 240), (shade, shade, shade)).save(folder / f"frame{i}.png")
    return folder


class Door:
    """One run of main.py, in a thread; `interrupt()` is Ctrl-C, `kill()` is a reset."""

    def __init__(self, fake, frames_dir: Path):
        from host.sim.board import Board, Costs, Faults, parse_version
        from host.sim.frames import FrameSource, list_frames
        from host.sim.runner import FirmwareLoader, default_camera_api, make_modules

        self.fake = fake  # tests/fakedevice.py FakeBoard
        self.pending_interrupt = False
        self.stopping = False
        self.exit = None  # why the program ended: 'interrupted', 'reset', 'crash: ...'
        door = self

        class DoorBoard(Board):
            def check_alive(self):
                super().check_alive()
                if door.stopping:
                    raise DoorStopped()
                if door.pending_interrupt:
                    door.pending_interrupt = False
                    raise KeyboardInterrupt()

            def next_frame(self):
                host_time.sleep(FRAME_REAL_S)
                return super().next_frame()

        root = fake.root
        if fake.legacy:
            dirs = (root if fake.sdcard else None, root)
        else:
            dirs = (root / "sdcard" if fake.sdcard else None, root / "flash")
        version = parse_version(fake.firmware)
        self.board = DoorBoard(
            frames=FrameSource(list_frames(frames_dir)), storage_dirs=dirs, firmware_version=fake.firmware,
            camera_api=default_camera_api(version), faults=Faults(), costs=Costs(), frames_count=1 << 60,
            time_limit_ms=float("inf"), unique_id=bytes.fromhex(fake.board_id), flash_bytes=fake.flash_bytes)
        modules = make_modules(self.board)
        machine = modules["machine"]
        machine.WDT = fake.make_machine().WDT
        machine.reset = fake.machine_reset
        machine.reset_cause = lambda: fake.reset_cause
        sleep_ms = modules["time"].sleep_ms

        def real_sleep_ms(ms):  # the sim clock jumps; the host waits too, on the fake's time scale
            host_time.sleep(min(ms / 1000.0 / fake.time_scale, 0.2))
            sleep_ms(ms)

        modules["time"].sleep_ms = real_sleep_ms
        modules["time"].sleep = lambda s: real_sleep_ms(s * 1000)
        storage = self.board.storage
        cwd = Path(storage.host_path(storage.default_cwd()))
        self.set_folder = None  # the board path of the set the card's main.py (tmboot.py) chose
        if "def choose(" in (cwd / "main.py").read_text():
            # the set loader, run by its own code: choose(), chdir, then that set's main.py
            boot = FirmwareLoader(self.board, modules, firmware_dir=cwd).load("main")
            self.set_folder = boot.choose(storage.cwd)
            if self.set_folder is not None:
                storage.chdir(self.set_folder)
                cwd = Path(storage.host_path(self.set_folder))
        self.loader = FirmwareLoader(self.board, modules, firmware_dir=cwd)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        from host.sim.board import StopSimulation, WatchdogReset

        try:
            # the card's main.py boots; a set's main (main.mpy as deployed) is imported by the loader
            self.loader.load("main", as_main=self.set_folder is None)
            self.exit = "returned"
        except KeyboardInterrupt:
            self.exit = "interrupted"
        except DoorStopped:
            self.exit = "stopped"
        except self.fake.HardReset:
            self.exit = "reset"
            self.fake.reset_request = True
        except (StopSimulation, WatchdogReset) as exc:
            self.exit = type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 -- the board prints a traceback and goes to the REPL
            self.exit = f"crash: {type(exc).__name__}: {exc}"

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    @property
    def console(self) -> list[str]:
        return self.board.console

    def interrupt(self, timeout: float = 10.0) -> None:
        """Ctrl-C: KeyboardInterrupt at the program's next board call; returns once it has ended."""
        self.pending_interrupt = True
        self.thread.join(timeout)

    def kill(self) -> None:
        self.stopping = True
        self.thread.join(10.0)
