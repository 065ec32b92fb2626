"""The simulated board's shared state: options, injected faults, clock, storage, recorded outputs."""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field
from pathlib import Path

from host.errors import UserError
from host.sim.clock import Clock
from host.sim.frames import FrameSource
from host.sim.storage import Storage
from tools.mpy import firmware_mpy


class StopSimulation(BaseException):
    """Ends a run (the frame budget or the time limit is spent). Like the IDE's stop button
    (KeyboardInterrupt) it is not an Exception, so the firmware's error handling does not catch it,
    but its `finally` blocks run: the relay is released and the log flushed."""


class WatchdogReset(BaseException):
    """The watchdog fired: the board resets at once. Nothing else the firmware does reaches the
    hardware (every fake raises this again), so unflushed log data is lost, as on the board."""


# reset causes, as machine.reset_cause() reports them on the STM32 port
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5


@dataclass
class FrameRange:
    start: int
    end: int | None = None  # exclusive; None: until the end of the run

    def __contains__(self, index: int) -> bool:
        return index >= self.start and (self.end is None or index < self.end)


@dataclass
class Faults:
    """Faults injected into the simulated board. Frame numbers count snapshot calls from 0."""

    no_sd: bool = False
    missing_model: bool = False
    corrupt_model: bool = False
    camera_init: bool = False  # the camera never starts (reset raises)
    camera: FrameRange | None = None  # snapshot raises on these frames
    inference: FrameRange | None = None  # predict / classify raise on these frames
    sd_free_bytes: int | None = None  # the card fills up after this many more bytes
    hang_at: int | None = None  # the loop hangs (no watchdog feed) at this snapshot
    capture: FrameRange | None = None  # img.save raises MemoryError on these frames (heap trouble)

    NAMES = ("no-sd", "missing-model", "corrupt-model", "camera-init", "camera", "inference", "capture", "sd-full",
             "hang")

    @classmethod
    def parse(cls, specs: list[str]) -> Faults:
        """'no-sd', 'missing-model', 'corrupt-model', 'camera-init', 'camera@20', 'camera@20-40',
        'inference@10', 'capture@5-30', 'sd-full@4096' (bytes left on the card), 'hang@30'."""
        faults = cls()
        for spec in specs or []:
            name, at, arg = spec.partition("@")
            if name not in cls.NAMES:
                raise UserError(f"unknown fault {spec!r}; choose from: {', '.join(cls.NAMES)}")
            takes_value = name in ("camera", "inference", "capture", "sd-full", "hang")
            if at and not takes_value:
                raise UserError(f"fault {spec!r}: {name} takes no '@' value; write --fault {name}")
            if at and not arg.replace("-", "").isdigit():  # "camera@" or "camera@x": never a silent 0
                raise UserError(f"fault {spec!r}: the value after '@' must be a whole number (a frame or bytes),"
                                f" e.g. {name}@20")
            try:
                if name in ("camera", "inference", "capture"):
                    start, _, end = (arg or "0").partition("-")
                    value = FrameRange(int(start), int(end) if end else None)
                    if value.start < 0 or (value.end is not None and value.end <= value.start):
                        raise UserError(f"fault {spec!r}: frames START or START-END with START < END (END excluded),"
                                        f" e.g. {name}@20-40")
                    setattr(faults, name, value)
                elif name == "sd-full":
                    faults.sd_free_bytes = int(arg or 0)
                    if faults.sd_free_bytes < 0:
                        raise UserError(f"fault {spec!r}: bytes left on the card, 0 or more")
                elif name == "hang":
                    faults.hang_at = int(arg or 0)
                    if faults.hang_at < 0:
                        raise UserError(f"fault {spec!r}: the frame to hang at, 0 or more")
                else:
                    setattr(faults, name.replace("-", "_"), True)
            except ValueError:
                raise UserError(f"fault {spec!r}: the value after '@' must be a whole number") from None
        return faults

    def active(self) -> list[str]:
        return [k for k, v in vars(self).items() if v not in (None, False)]


@dataclass
class Costs:
    """Simulated time of each board operation, in ms (from the board profile where it has one)."""

    snapshot_ms: float = 8.0
    inference_ms: float = 7.3
    scale_ms: float = 1.5  # drawing the window into a 32x32 input; scale_ms_for(S) for an SxS one
    jpeg_save_ms: float = 6.0  # estimate: 200x200 RGB565 JPEG encode + FAT write, UNVERIFIED
    write_ms_per_kb: float = 0.5  # estimate: ~2 MB/s SD writes through FatFs, UNVERIFIED
    hang_ms: float = 60_000.0

    def scale_ms_for(self, input_size: int) -> float:
        """The scaling's time for the model's size x size input: scale_ms x (size/32)^2, the board
        profile's rule (host.boards.scale_factor; an estimate)."""
        from host.boards import scale_factor

        return self.scale_ms * scale_factor(input_size)

    @classmethod
    def for_board(cls, board: str, macs: int | None) -> Costs:
        from host.boards import load_board

        profile = load_board(board)
        costs = cls(snapshot_ms=float(profile["camera_frame_ms"]), scale_ms=float(profile["scale_ms"]))
        if macs:
            costs.inference_ms = profile.inference_ms(macs)
        return costs


@dataclass
class PinRecord:
    name: str
    history: list[tuple[float, int | None]] = field(default_factory=list)  # (sim ms, level or None)

    @property
    def value(self) -> int | None:
        return self.history[-1][1] if self.history else None

    def set(self, t_ms: float, level: int | None) -> None:
        if not self.history or self.history[-1][1] != level:
            self.history.append((t_ms, level))


@dataclass
class LedRecord:
    name: str
    history: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def lit(self) -> bool:
        return bool(self.history and self.history[-1][1])

    def set(self, t_ms: float, lit: bool) -> None:
        if not self.history or self.history[-1][1] != lit:
            self.history.append((t_ms, lit))


@dataclass
class Prediction:
    frame_index: int
    path: Path
    outputs: list[float]
    boot: int


class Watchdog:
    """machine.WDT: once started, not fed within `timeout_ms` of simulated time -> board reset."""

    def __init__(self, board: Board, timeout_ms: int):
        self.board = board
        self.timeout_ms = timeout_ms
        self.last_feed_us = board.clock.us
        self.feeds = 0

    def feed(self) -> None:
        self.board.check_alive()
        self.last_feed_us = self.board.clock.us
        self.feeds += 1

    def check(self) -> None:
        expiry = self.last_feed_us + self.timeout_ms * 1000
        if self.board.clock.us > expiry:
            self.board.clock.us = expiry + 1  # the reset happens at expiry, not at the end of the stall
            self.board.halt()


class Board:
    def __init__(self, *, frames: FrameSource, storage_dirs: tuple[Path | None, Path], firmware_version: str,
                 camera_api: str, faults: Faults, costs: Costs, frames_count: int, time_limit_ms: float,
                 start_ticks_ms: int = 0, unique_id: bytes = b"TMSIM\x01", echo: bool = False,
                 on_frame=None, memory=None, board_name: str = "openmv_h7", flash_bytes: int | None = None):
        self.frames = frames
        self.firmware_version = firmware_version
        self.version = parse_version(firmware_version)
        self.mpy = firmware_mpy(self.version)  # sys.implementation._mpy: the .mpy version it imports
        self.camera_api = camera_api
        self.faults = faults
        self.costs = costs
        self.frames_count = frames_count
        self.time_limit_ms = time_limit_ms
        self.unique_id = unique_id
        self.echo = echo
        self.on_frame = on_frame
        self.board_name = board_name
        self.memory = memory  # host.sim.heap.BoardMemory, or None: memory not modelled
        self.reset_request: int | None = None  # machine.reset(): the cause the next boot reports
        self.clock = Clock(start_ticks_ms)
        self.clock.listeners.append(self._check_time)
        sd_dir, flash_dir = storage_dirs
        self.storage = Storage(
            None if faults.no_sd else sd_dir, flash_dir, mounts=self.version >= (4, 6, 0),
            sd_free_bytes=None, on_write=self._charge_write, check_alive=self.check_alive,
            has_rom=self.version >= (4, 7, 0), flash_bytes=flash_bytes)
        self.snapshots = 0  # snapshot calls over the whole run (all boots)
        self.snapshot_ms: list[float] = []  # simulated time of each snapshot call
        self.boot = 1
        self.reset_cause = PWRON_RESET
        self.halted = False
        self.watchdog: Watchdog | None = None
        self.watchdog_resets = 0
        self.pins: dict[str, PinRecord] = {}
        self.leds: dict[str, LedRecord] = {}
        self.console: list[str] = []
        self.console_ms: list[float] = []  # simulated time of each console line
        self.predictions: list[Prediction] = []
        self.current_frame: int | None = None
        self.calls: collections.Counter[str] = collections.Counter()  # which board APIs the firmware used

    @property
    def is_stm32(self) -> bool:
        """H7 and H7 Plus (STM32, with `pyb`); the RT1062 is the mimxrt port (no `pyb`)."""
        return "rt10" not in self.board_name

    @functools.cached_property
    def camera_interface(self) -> str:
        """The board profile's `camera_interface` ("stm32_dcmi": the DMA window rule), the field
        tools.deploy checks a camera_window against, so the simulator and deploy share one fact."""
        from host.boards import load_board

        return str(load_board(self.board_name).data.get("camera_interface", ""))

    def arm_sd_full(self) -> None:
        """Start counting the card's free space (after deployment copied the bundle onto it)."""
        if self.faults.sd_free_bytes is not None and self.storage.sd_dir is not None:
            self.storage.sd_capacity = self.storage.sd_used + self.faults.sd_free_bytes

    # --- life cycle ------------------------------------------------------------------------------

    def check_alive(self) -> None:
        if self.halted:
            raise WatchdogReset()

    def halt(self) -> None:
        self.halted = True
        raise WatchdogReset()

    def reboot(self, cause: int) -> None:
        """Hardware reset: pins float (relay released), LEDs off, ticks restart, watchdog gone."""
        t = self.clock.ms
        for pin in self.pins.values():
            pin.set(t, None)
        for led in self.leds.values():
            led.set(t, False)
        self.watchdog = None
        self.halted = False
        self.reset_request = None
        self.reset_cause = cause
        if self.memory is not None:  # the heap is rebuilt and the fb_alloc leak is gone
            self.memory.reset()
        self.boot += 1
        self.clock.reboot()
        self.storage.cwd = self.storage.default_cwd()

    def _check_time(self) -> None:
        if self.watchdog is not None:
            self.watchdog.check()
        if self.clock.ms > self.time_limit_ms:
            raise StopSimulation("time limit")

    def _charge_write(self, nbytes: int) -> None:
        self.clock.advance(self.costs.write_ms_per_kb * nbytes / 1024.0)

    # --- what the fakes call ---------------------------------------------------------------------

    def next_frame(self) -> int:
        """Count a snapshot; stop the run when the frame budget is spent."""
        self.check_alive()
        if self.snapshots >= self.frames_count:
            raise StopSimulation("frames")
        index = self.snapshots
        self.snapshots += 1
        self.snapshot_ms.append(self.clock.ms)
        if self.on_frame is not None:
            self.on_frame(index)
        return index

    def print(self, *args, sep=" ", end="\n", file=None, flush=False) -> None:
        text = sep.join(str(a) for a in args)
        self.console.append(text)
        self.console_ms.append(self.clock.ms)
        if self.echo:
            print(text, end=end, flush=True)


def parse_version(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.split("."))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise UserError(f"firmware version {text!r} must look like 4.6.0")
    return parts  # type: ignore[return-value]
