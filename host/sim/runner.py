"""Run the real firmware/main.py on the simulated board.

The firmware's modules are executed from their files with a private module table: `import sensor`
(or `time`, `os`, `machine`...) inside firmware code gets the simulated board's module, and `open`
and `print` are the board's. CPython's own modules are never replaced, so nothing leaks out of a
run. A module the board does not have raises ImportError, as it would on the camera.
"""

from __future__ import annotations

import builtins
import json
import tempfile
import time as host_time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from host.errors import UserError
from host.sim import camera as sim_camera
from host.sim import hardware, heap, ml
from host.sim.board import (
    WDT_RESET,
    Board,
    Costs,
    Faults,
    LedRecord,
    PinRecord,
    Prediction,
    StopSimulation,
    WatchdogReset,
)
from host.sim.bundle import FIRMWARE_DIR, Bundle, deploy, load, render
from host.sim.frames import Frame, FrameSource, list_frames
from tools.mpy import compile_module, why_not_loaded

# MicroPython modules on OpenMV firmware that behave the same in CPython for what firmware uses
PASSTHROUGH = {"array", "binascii", "collections", "errno", "hashlib", "heapq", "io", "json", "math",
               "random", "re", "struct", "sys"}
_CODE_CACHE: dict[tuple[Path, float], object] = {}


@dataclass
class SimOptions:
    frames: list[Frame] | Path | str
    bundle: Path | str | Bundle = Path("models/tinymask")
    sd_dir: Path | str | None = None  # the card's folder (temporary when None)
    flash_dir: Path | str | None = None  # the internal flash's folder (temporary when None)
    frames_count: int | None = None  # default: every frame once
    firmware_version: str = "4.6.0"
    camera_api: str | None = None  # 'sensor' or 'csi'; default: what the firmware version offers
    config: dict = field(default_factory=dict)  # config.json overrides (typed values)
    config_text: str | None = None  # write this as config.json verbatim (tests of bad configs)
    faults: Faults = field(default_factory=Faults)
    board: str = "openmv_h7"
    start_ticks_ms: int = 0
    rtc_utc: str | None = None  # the RTC as tools.deploy sets it ('2026-12-01T11:35:55Z'); None: never set
    max_boots: int = 3
    time_limit_ms: float | None = None
    deploy_firmware: bool = True  # False: the card holds the bundle only, and firmware/ runs as it is
    firmware_format: str = "auto"  # tools.deploy --firmware-format: .mpy when this firmware imports them
    echo: bool = False
    progress: object = None  # callable(frame_index) for progress bars


@dataclass
class SimResult:
    frames: int  # snapshot calls
    boots: int
    exit: str  # 'frames', 'time limit', 'max boots', 'returned' or 'crash: ...'
    wall_s: float
    sim_ms: float
    sd_dir: Path | None
    flash_dir: Path
    config: dict
    console: list[str]
    pins: dict[str, PinRecord]
    leds: dict[str, LedRecord]
    predictions: list[Prediction]
    watchdog_resets: int
    watchdog_feeds: int
    requested_resets: int = 0  # machine.reset() calls (the firmware's memory recovery)
    calls: dict = field(default_factory=dict)
    snapshot_ms: list = field(default_factory=list)  # simulated time of each snapshot call
    console_ms: list = field(default_factory=list)  # simulated time of each console line

    @property
    def relay(self) -> PinRecord:
        return self.pins.get(self.config["relay_pin"], PinRecord(self.config["relay_pin"]))

    def relay_active(self, level: int | None) -> bool:
        return level is not None and level == (1 if self.config["relay_active_high"] else 0)

    def relay_on(self) -> bool:
        """Is the relay driven to its active level at the end of the run?"""
        return self.relay_active(self.relay.value)

    def door_openings(self) -> int:
        history = self.relay.history
        return sum(1 for i, (_, level) in enumerate(history)
                   if self.relay_active(level) and (i == 0 or not self.relay_active(history[i - 1][1])))

    def events(self) -> list[tuple[str, str]]:
        """(event, detail) of every event record, from the console (it sees them even with no card)."""
        return [(event, detail) for _, event, detail in self.timed_events()]

    def timed_events(self) -> list[tuple[float, str, str]]:
        """(simulated ms, event, detail) of every event the firmware reported."""
        out = []
        for t, line in zip(self.console_ms, self.console):
            if line.startswith("tinymask: E,"):
                body = line[len("tinymask: "):].split(",", 4)
                out.append((t, body[3], body[4].rsplit("*", 1)[0]))
        return out

    def errors(self) -> list[tuple[str, str]]:
        bad = {"error", "camera_error", "model_error", "config_error", "sd_full", "capture_error", "watchdog"}
        return [e for e in self.events() if e[0] in bad]

    def log_files(self) -> list[Path]:
        root = self.sd_dir
        if root is None:
            return []
        return sorted((root / self.config["log_dir"]).glob("*.log"))

    @property
    def board_fps(self) -> float:
        return 1000.0 * self.frames / self.sim_ms if self.sim_ms else 0.0

    @property
    def wall_fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


def default_camera_api(version: tuple[int, int, int]) -> str:
    return "csi" if version >= (4, 8, 0) else "sensor"


RTC_UNSET_EPOCH = 1_420_070_400  # 2015-01-01T00:00:00Z: an STM32 RTC after power-on (micropython ports/stm32/rtc.c)


def add_rtc_and_rng(modules: dict, board: Board, rtc_utc: str | None) -> None:
    """time.localtime and machine.RTC read a calendar that runs on the simulated clock and survives
    resets (the RTC is in the backup domain); os.urandom is the RNG (MICROPY_PY_OS_URANDOM on the H7)."""
    import calendar
    import datetime
    import os as host_os

    state = {"epoch": RTC_UNSET_EPOCH}
    if rtc_utc is not None:
        state["epoch"] = calendar.timegm(datetime.datetime.fromisoformat(rtc_utc.replace("Z", "")).timetuple())

    def now_s() -> int:
        return state["epoch"] + board.clock.us // 1_000_000

    def localtime(secs=None):
        t = host_time.gmtime(now_s() if secs is None else secs)
        return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday, t.tm_yday)

    class RTC:
        def datetime(self, value=None):
            if value is None:
                t = localtime()
                return (t[0], t[1], t[2], t[6] + 1, t[3], t[4], t[5], 0)
            y, mo, d, _, h, mi, sec = value[:7]
            state["epoch"] = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) - board.clock.us // 1_000_000
            return None

    modules["time"].localtime = localtime
    modules["machine"].RTC = RTC
    modules["os"].urandom = host_os.urandom


def make_modules(board: Board, rtc_utc: str | None = None) -> dict:
    v = board.version
    if v < (4, 3, 0):
        raise UserError(f"firmware {board.firmware_version}: the simulator models 4.3.0 and later "
                        "(older firmware dequantizes int8 outputs differently)")
    from host.sim.clock import make_time_module

    cam = sim_camera._Camera(board)
    sensor = sim_camera.make_sensor(board, cam)
    modules = {
        "time": make_time_module(board.clock, board.check_alive),
        "os": board.storage.os_module(board.firmware_version),
        "machine": hardware.make_machine(board),
        "pyb": hardware.make_pyb(board),
        "omv": hardware.make_omv(board),
        "gc": hardware.make_gc(board),
        "micropython": hardware.make_micropython(),
        "image": sim_camera.make_image(board),
        "sensor": sensor,
    }
    if v >= (4, 6, 0):  # 4.6-4.7: csi aliases sensor; 4.8+: the CSI class (unless told to hide it)
        modules["csi"] = sim_camera.make_csi(board, cam, board.camera_api == "csi", sensor)
    ml_module = ml.make_ml(board) if v >= (4, 5, 6) else None
    if ml_module is not None:
        modules["ml"] = ml_module
    modules["tf"] = ml.make_tf(board, ml_module)
    add_rtc_and_rng(modules, board, rtc_utc)
    return modules


class FirmwareLoader:
    """Executes firmware files as modules with the board's builtins and imports."""

    def __init__(self, board: Board, modules: dict, firmware_dir: Path = FIRMWARE_DIR):
        self.board = board
        self.board_modules = modules
        self.firmware_dir = firmware_dir
        self.loaded: dict[str, object] = {}
        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = self._import
        self.builtins["open"] = board.storage.open
        self.builtins["print"] = board.print

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            raise ImportError("relative imports are not used by the firmware")
        if name in self.board_modules:
            module = self.board_modules[name]
            if module is None:  # a module this port does not have (pyb on the RT1062)
                raise ImportError(f"no module named '{name}'")
            return module
        if name in self.loaded:
            return self.loaded[name]
        if any((self.firmware_dir / f"{name}{suffix}").is_file() for suffix in (".py", ".mpy")):
            return self.load(name)
        if name in PASSTHROUGH:
            return builtins.__import__(name, globals, locals, fromlist, level)
        raise ImportError(f"no module named '{name}'")

    def _code(self, path: Path):
        key = (path, path.stat().st_mtime)
        code = _CODE_CACHE.get(key)
        if code is None:
            code = compile(path.read_text(), str(path), "exec")
            _CODE_CACHE[key] = code
        return code

    def source(self, name: str) -> Path:
        """The file to run for module `name`: its .py, which MicroPython's import prefers (py/builtinimport.c
        stat_file_py_or_mpy), else the firmware source its .mpy was compiled from. A .mpy the board would
        refuse raises the board's own error; one that is not mpy-cross of firmware/<name>.py cannot be run."""
        path = self.firmware_dir / f"{name}.py"
        if path.is_file():
            return path
        compiled = self.firmware_dir / f"{name}.mpy"
        data = compiled.read_bytes()
        reason = why_not_loaded(self.board.mpy, data)
        if reason is not None:
            self.board.print(f"[sim] {compiled.name}: {reason}")
            raise ValueError("incompatible .mpy file")  # py/persistentcode.c mp_raw_code_load
        source = FIRMWARE_DIR / f"{name}.py"
        if not source.is_file() or compile_module(source) != data:
            raise UserError(f"{compiled}: not mpy-cross of firmware/{name}.py, so the simulator cannot run it; "
                            f"deploy again (tools.deploy or host.simulate compile the firmware)")
        return source

    def load(self, name: str, as_main: bool = False):
        import types

        if as_main and not (self.firmware_dir / f"{name}.py").is_file():
            raise UserError(f"{self.firmware_dir}: no {name}.py to boot: OpenMV runs only a main.py at boot "
                            f"(a .mpy is imported, never booted)")
        path = self.source(name)
        module = types.ModuleType("__main__" if as_main else name)
        module.__file__ = str(path)
        module.__dict__["__builtins__"] = self.builtins
        if not as_main:
            self.loaded[name] = module
        exec(self._code(path), module.__dict__)
        return module


@contextmanager
def _folders(options: SimOptions):
    with tempfile.TemporaryDirectory(prefix="tinymask-sim-") as tmp:
        sd = Path(options.sd_dir) if options.sd_dir is not None else Path(tmp) / "sdcard"
        flash = Path(options.flash_dir) if options.flash_dir is not None else Path(tmp) / "flash"
        yield sd, flash


def simulate(options: SimOptions) -> SimResult:
    """Deploy the bundle onto the simulated card (or flash) and run firmware/main.py until the frame
    budget is spent. With no --sd folder the card lives in a temporary folder that is removed."""
    with _folders(options) as (sd_dir, flash_dir):
        result = _simulate(options, sd_dir, flash_dir)
        if options.sd_dir is None:
            result.sd_dir = None
        return result


def _simulate(options: SimOptions, sd_dir: Path, flash_dir: Path) -> SimResult:
    bundle = options.bundle if isinstance(options.bundle, Bundle) else load(options.bundle, options.board)
    config = render(bundle, options.board, options.config)
    frames = FrameSource(list_frames(options.frames))
    count = options.frames_count if options.frames_count is not None else len(frames.frames)
    if count < 1:
        raise UserError("--frames-count must be at least 1")
    from host.sim.board import parse_version

    version = parse_version(options.firmware_version)
    camera_api = options.camera_api or default_camera_api(version)
    if camera_api not in ("sensor", "csi"):
        raise UserError(f"--camera-api {camera_api!r}: choose sensor or csi")
    if camera_api == "csi" and version < (4, 8, 0):
        raise UserError(f"--camera-api csi needs firmware 4.8.0 or later (got {options.firmware_version})")
    limit = options.time_limit_ms
    if limit is None:
        limit = 60_000.0 + count * (config["recover_ms"] + 1000.0)
    from host.boards import load_board

    # the heap, fb_alloc and flash filesystem of this board at this firmware (boards/*.json memory)
    memory = heap.for_board(options.board, version, arena_bytes=bundle.card.get("arena_bytes") or 0)
    board = Board(
        frames=frames, storage_dirs=(sd_dir, flash_dir), firmware_version=options.firmware_version,
        camera_api=camera_api, faults=options.faults, costs=Costs.for_board(options.board, bundle.card.get("macs")),
        frames_count=count, time_limit_ms=limit, start_ticks_ms=options.start_ticks_ms, echo=options.echo,
        on_frame=options.progress, memory=memory, board_name=options.board,
        flash_bytes=load_board(options.board).data.get("flash_fs_bytes"))
    firmware_dir = _deploy(board, bundle, config, options)
    board.arm_sd_full()

    started = host_time.perf_counter()
    exit_reason = "max boots"
    feeds = 0
    requested = 0
    while board.boot <= options.max_boots:
        loader = FirmwareLoader(board, make_modules(board, options.rtc_utc), firmware_dir=firmware_dir)
        try:
            loader.load("main", as_main=True)
            exit_reason = "returned"
            break
        except StopSimulation as stop:
            exit_reason = str(stop) or "frames"
            break
        except WatchdogReset:
            feeds += board.watchdog.feeds if board.watchdog else 0
            cause = board.reset_request or WDT_RESET
            if board.reset_request is None:
                board.watchdog_resets += 1
                board.print(f"[sim] board reset by the watchdog at {board.clock.ms:.0f} ms")
            else:
                requested += 1
                board.print(f"[sim] machine.reset() at {board.clock.ms:.0f} ms")
            if board.boot >= options.max_boots:
                break
            board.reboot(cause)
        except Exception:  # the firmware let an exception escape main.py: on the board, the REPL
            exit_reason = "crash: " + traceback.format_exc(limit=-3).strip().splitlines()[-1]
            for line in traceback.format_exc().splitlines():
                board.print(line)
            break
    if board.watchdog is not None:
        feeds += board.watchdog.feeds
    return SimResult(
        frames=board.snapshots, boots=board.boot, exit=exit_reason,
        wall_s=host_time.perf_counter() - started, sim_ms=board.clock.ms,
        sd_dir=board.storage.sd_dir, flash_dir=flash_dir, config=config, console=board.console,
        pins=board.pins, leds=board.leds, predictions=board.predictions,
        watchdog_resets=board.watchdog_resets, watchdog_feeds=feeds, requested_resets=requested, calls=dict(board.calls),
        snapshot_ms=board.snapshot_ms, console_ms=board.console_ms)


def _deploy(board: Board, bundle: Bundle, config: dict, options: SimOptions) -> Path:
    """Put the set where the board runs main.py from; returns the folder the firmware is imported from."""
    storage = board.storage
    target = storage.host_path(storage.default_cwd())
    deploy(bundle, config, target, firmware=options.deploy_firmware, camera_mpy=board.mpy,
           firmware_format=options.firmware_format)
    if options.config_text is not None:
        (target / "config.json").write_text(options.config_text)
    model = target / bundle.model.name
    if board.faults.missing_model:
        model.unlink()
    elif board.faults.corrupt_model:
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])  # a copy cut short (card pulled out mid-copy)
    storage.sd_used = sum(p.stat().st_size for p in storage.sd_dir.rglob("*") if p.is_file()) \
        if storage.sd_dir is not None else 0
    return Path(target) if options.deploy_firmware else FIRMWARE_DIR


def config_json(result: SimResult) -> str:
    return json.dumps(result.config, indent=1, sort_keys=True)
