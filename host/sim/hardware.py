"""Fake `machine`, `pyb`, `omv`, `gc` and `micropython` modules: pins and LEDs record their history,
the watchdog runs on the simulated clock."""

from __future__ import annotations

import types

from host.sim.board import SOFT_RESET, WDT_RESET, Board, LedRecord, PinRecord, Watchdog, WatchdogReset

LED_NAMES = {1: "red", 2: "green", 3: "blue", 4: "ir"}
MACHINE_LED_NAMES = {"LED_RED": "red", "LED_GREEN": "green", "LED_BLUE": "blue", "LED_IR": "ir"}
PINS = tuple(f"P{i}" for i in range(10))
HEAP_FREE = 100_000  # when the board has no memory model: about the H7's free heap with the model loaded


def _pin_class(board: Board):
    class Pin:
        IN, OUT, OUT_PP, OUT_OD, OPEN_DRAIN, ALT, ANALOG = 0, 1, 1, 17, 17, 2, 3
        PULL_NONE, PULL_UP, PULL_DOWN = 0, 1, 2

        def __init__(self, name, mode=-1, pull=-1, *, value=None, **kwargs):
            board.check_alive()
            if name not in PINS:
                raise ValueError(f"Pin({name}) doesn't exist")
            self.name = name
            self.mode = mode
            self.record = board.pins.setdefault(name, PinRecord(name))
            if value is not None:
                self.value(value)

        def value(self, level=None):
            board.check_alive()
            if level is None:
                return self.record.value or 0
            self.record.set(board.clock.ms, 1 if level else 0)
            return None

        def on(self):
            self.value(1)

        def off(self):
            self.value(0)

        high = on
        low = off

    return Pin


def _led(board: Board, name: str):
    class LED:
        def __init__(self):
            self.record = board.leds.setdefault(name, LedRecord(name))

        def on(self):
            board.check_alive()
            self.record.set(board.clock.ms, True)

        def off(self):
            board.check_alive()
            self.record.set(board.clock.ms, False)

        def toggle(self):
            board.check_alive()
            self.record.set(board.clock.ms, not self.record.lit)

        def value(self, v=None):
            if v is None:
                return int(self.record.lit)
            (self.on if v else self.off)()

        def intensity(self, value=None):
            return 255 if self.record.lit else 0

    return LED()


def iwdg_period_ms(timeout_ms: int) -> int:
    """The period the STM32 IWDG really gets for machine.WDT(timeout=timeout_ms): ports/stm32/machine_wdt.c
    (openmv/micropython branches openmv-1.23 and openmv-1.24) halves the timeout with integer division while
    it picks the prescaler (at most 6 times, while it is 512 or more), then counts 8 ticks a millisecond at
    that prescaler, so 5000 ms is 312 x 16 = 4,992 ms at the LSI's nominal 32 kHz."""
    timeout, shift = timeout_ms, 0
    while shift < 6 and timeout >= 512:
        timeout //= 2
        shift += 1
    return timeout << shift


def make_machine(board: Board) -> types.ModuleType:
    mod = types.ModuleType("machine")
    mod.Pin = _pin_class(board)

    def wdt(id=0, timeout=5000):
        # One watchdog; calling the constructor again reprograms its timeout and reloads it
        # (openmv/micropython 827c2b859, ports/stm32/machine_wdt.c; docs/platform.md section 11).
        board.check_alive()
        if id != 0:
            raise ValueError(f"WDT({id}) doesn't exist")
        if not 0 < int(timeout) <= 32767:
            raise ValueError("WDT timeout too long" if int(timeout) > 0 else "WDT timeout too short")
        period = iwdg_period_ms(int(timeout))
        if board.watchdog is not None:
            board.watchdog.timeout_ms = period
            board.watchdog.feed()
            return board.watchdog
        board.watchdog = Watchdog(board, period)
        return board.watchdog

    mod.WDT = wdt
    mod.PWRON_RESET, mod.HARD_RESET, mod.WDT_RESET, mod.DEEPSLEEP_RESET, mod.SOFT_RESET = 1, 2, WDT_RESET, 4, 5
    mod.reset_cause = lambda: board.reset_cause
    mod.unique_id = lambda: board.unique_id
    mod.freq = lambda: 480_000_000

    def reset():  # machine.reset(): the board restarts at once; main.py runs again (a cold boot)
        board.reset_request = SOFT_RESET  # STM32: NVIC_SystemReset sets the software-reset flag
        board.halted = True
        raise WatchdogReset()

    mod.reset = reset
    mod.SDCard = _sdcard_class(board)
    if board.version >= (4, 5, 0):  # frozen machine.LED shim (docs/platform.md item 6)
        mod.LED = lambda name: _led(board, MACHINE_LED_NAMES[name])
    return mod


def _sdcard_class(board: Board):
    """pyb.SDCard() (STM32) and machine.SDCard(1) (mimxrt): present() reads the card-detect pin
    (micropython ports/stm32/sdcard.c, ports/mimxrt/machine_sdcard.c)."""

    class SDCard:
        def __init__(self, *args, **kwargs):
            board.check_alive()

        def present(self):
            return board.storage.sd_dir is not None

    return SDCard


def make_pyb(board: Board) -> types.ModuleType | None:
    """The STM32 `pyb` module; None on the RT1062 (mimxrt port: `machine` only, item 11)."""
    if not board.is_stm32:
        return None
    mod = types.ModuleType("pyb")
    mod.SDCard = _sdcard_class(board)
    mod.LED = lambda index: _led(board, LED_NAMES[index])
    mod.Pin = _pin_class(board)
    mod.millis = board.clock.ticks_ms
    mod.delay = lambda ms: board.clock.advance(ms)
    return mod


def make_omv(board: Board) -> types.ModuleType:
    mod = types.ModuleType("omv")
    mod.version_string = lambda: board.firmware_version
    mod.version_major = lambda: board.version[0]
    mod.version_minor = lambda: board.version[1]
    mod.version_patch = lambda: board.version[2]
    mod.board_type = lambda: "H7"
    mod.board_id = lambda: board.unique_id.hex().upper()
    mod.arch = lambda: "H7 1024"
    return mod


def make_gc(board: Board | None = None) -> types.ModuleType:
    """gc over the board's heap model: mem_free/mem_alloc are what the firmware, the model and its
    arena leave; collect() lets CPython drop what the firmware let go of (a freed model)."""
    import gc as host_gc

    memory = board.memory if board is not None else None
    mod = types.ModuleType("gc")
    mod.collect = (lambda: None) if memory is None else (lambda: host_gc.collect() and None)
    mod.mem_free = (lambda: HEAP_FREE) if memory is None else (lambda: memory.heap.free_bytes())
    mod.mem_alloc = (lambda: 80_000) if memory is None else (lambda: memory.heap.used())
    mod.enable = mod.disable = lambda: None
    mod.isenabled = lambda: True
    mod.threshold = lambda *a: -1
    return mod


def make_micropython() -> types.ModuleType:
    mod = types.ModuleType("micropython")
    mod.const = lambda x: x
    mod.alloc_emergency_exception_buf = lambda n: None
    mod.mem_info = lambda *a: None
    mod.opt_level = lambda *a: 0
    mod.schedule = lambda f, arg: f(arg)
    return mod
