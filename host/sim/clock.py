"""The simulated board's clock: it moves only when the simulation says so, so runs are repeatable.

`ticks_ms()` behaves as MicroPython's: it starts at 0 at every boot (plus an optional start value,
to test wrap-around) and wraps at 2**30. The firmware's waits (`sleep_ms`, camera settling) and the
cost of each simulated operation advance the clock; listeners (the watchdog, the run's time limit)
are called after every advance.
"""

from __future__ import annotations

import types
from typing import Callable

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALF = TICKS_PERIOD >> 1


def ticks_diff(a: int, b: int) -> int:
    return ((a - b + TICKS_HALF) & TICKS_MAX) - TICKS_HALF


def ticks_add(a: int, delta: int) -> int:
    return (a + delta) & TICKS_MAX


class Clock:
    def __init__(self, start_ticks_ms: int = 0):
        self.us = 0  # microseconds since the simulation started (never wraps, never resets)
        self.boot_us = 0
        self.start_ticks_ms = start_ticks_ms
        self.listeners: list[Callable[[], None]] = []

    @property
    def ms(self) -> float:
        return self.us / 1000.0

    def advance(self, ms: float) -> None:
        if ms > 0:
            self.us += int(round(ms * 1000))
            for listener in list(self.listeners):
                listener()

    def reboot(self, start_ticks_ms: int = 0) -> None:
        self.boot_us = self.us
        self.start_ticks_ms = start_ticks_ms

    def ticks_us(self) -> int:
        return (self.start_ticks_ms * 1000 + self.us - self.boot_us) & TICKS_MAX

    def ticks_ms(self) -> int:
        return (self.start_ticks_ms + (self.us - self.boot_us) // 1000) & TICKS_MAX


class _FpsClock:
    """time.clock(): fps is the average over the tick() -> fps() intervals, as OpenMV's py_clock.c."""

    def __init__(self, clock: Clock):
        self._clock = clock
        self._t0 = clock.us
        self._frames = 0
        self._total_us = 0

    def tick(self) -> None:
        self._t0 = self._clock.us

    def avg(self) -> float:
        return self._total_us / 1000.0 / max(self._frames, 1)

    def fps(self) -> float:
        self._frames += 1
        self._total_us += self._clock.us - self._t0
        return 1e6 * self._frames / self._total_us if self._total_us else 0.0


def make_time_module(clock: Clock, check_alive: Callable[[], None]) -> types.ModuleType:
    mod = types.ModuleType("time")

    def ticks_ms() -> int:
        check_alive()
        return clock.ticks_ms()

    def sleep_ms(ms: int) -> None:
        check_alive()
        clock.advance(ms)

    mod.ticks_ms = ticks_ms
    mod.ticks_us = clock.ticks_us
    mod.ticks_cpu = clock.ticks_us
    mod.ticks_diff = ticks_diff
    mod.ticks_add = ticks_add
    mod.sleep_ms = sleep_ms
    mod.sleep_us = lambda us: sleep_ms(us / 1000.0)
    mod.sleep = lambda s: sleep_ms(s * 1000.0)
    mod.time = lambda: 1_700_000_000 + clock.us // 1_000_000
    mod.time_ns = lambda: (1_700_000_000 * 1_000_000 + clock.us) * 1000
    mod.clock = lambda: _FpsClock(clock)
    return mod
