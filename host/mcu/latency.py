"""H7 inference time from counted instructions.

`estimate_ms(instructions)` = instructions x CYCLES_PER_INSTRUCTION / 480 MHz. The factor comes from
published timings of real Cortex-M7 runs of networks we rebuild and count on the emulator
(`CALIBRATION`, host/mcu/models.py builds each network; `python benchmarks/bench_mcu.py` recounts).
The instruction counts below are the emulator's for the pinned library on an all-zero input, untrained
weights (host.mcu.models, seed 1337); CMSIS-NN's int8 kernels are data-independent to within a few
hundred instructions (activation clamps, softmax/logistic), and the benchmark recounts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

H7_CLOCK_HZ = 480_000_000


@dataclass(frozen=True)
class Point:
    name: str  # host.mcu.models builder
    what: str
    measured_ms: float  # for kind "bound": 1000 / the published FPS, camera included
    clock_hz: float
    instructions: int  # Invoke(), counted by the emulator (benchmarks/bench_mcu.py)
    macs: int
    source: str
    kind: str  # "fit": used for the factor; "check": measured, held out; "bound": an upper bound; "rejected"
    note: str = ""

    @property
    def cycles(self) -> float:
        return self.measured_ms * 1e-3 * self.clock_hz

    @property
    def cpi(self) -> float:
        return self.cycles / self.instructions


TINYENGINE = "github.com/mit-han-lab/tinyengine README.md"
CALIBRATION = [
    Point("cmsis_nn_cifar10", "CIFAR-10 CNN (3 conv 5x5 + pools + dense), CMSIS-NN on STM32F746 Cortex-M7 at 216 MHz",
          99.1, 216e6, 25_411_477, 12_298_240,
          "Lai, Suda and Chandra 2018, CMSIS-NN, arXiv 1801.06601, section 4: 99.1 ms per image (10.1 images/s)",
          "fit", "the 2018 q7 kernels, not today's s8 ones; same core, lower clock (fewer flash wait states)"),
    Point("mcunet_vww1", "mcunet-vww1 (MCUNet, 80x80x3 VWW), TFLM 713b6ed + CMSIS-NN 011bf32 on STM32H743 (clock not stated: 480 MHz)",
          97.0, 480e6, 54_525_888, 11_578_816,
          f"{TINYENGINE} at 47bb283 (updated 2022-12, 'profiled on STM32H743'), latency table, CMSIS-NN column: 97ms",
          "fit", "the board's own chip; the README gives no clock: 480 MHz, the H743's maximum, is assumed"
                 " (400 MHz would mean 0.712 cycles/instr.); int8 .tflite from the MCUNet model zoo, float I/O;"
                 " compiled with -Ofast in STM32CubeIDE"),
    Point("mcunet_vww1", "mcunet-vww1 (then 'mcunet-5fps-vww'), CMSIS-NN v2.0.0 on STM32F746G-DISCO at 216 MHz",
          269.0, 216e6, 54_525_888, 11_578_816,
          f"{TINYENGINE} at 0363956 (2022-12-14, 'profiled on STM32F746G-DISCO'), latency table, CMSIS-NN v2.0.0"
          " column: 269ms",
          "check", "held out: CMSIS-NN v2.0.0 (2020) kernels, older than the library counted; the F746's flash wait"
                   " states and 4 KB caches"),
    Point("mobilenet_v1_025_96_gray", "person_detect (MobileNet v1 0.25, 96x96x1), OpenMV Cam RT1062 (Cortex-M7, 600 MHz)",
          1000 / 18, 600e6, 23_531_554, 7_157_888,
          "openmv/openmv PR #2536 (2024-12-04): the built-in person detection network 'hits 18FPS' on the RT1062",
          "bound", "whole loop with the camera, so inference is at most 55.6 ms; the RT1062 links the same"
                   " cortex-m7+fp libtflm build"),
    Point("mobilenet_v1_025_96", "MobileNet v1 0.25, 96x96x3 (visual wake words), TFLM + CMSIS-NN on STM32H7 at 480 MHz",
          18.0, 480e6, 24_252_507, 7_489_664,
          "rksharma.dev/blogs/tflite-micro-stm32h7.html: about 18 ms with CMSIS-NN (67 ms without)",
          "rejected", "implies 0.36 cycles per instruction, 2.8 instructions per cycle: beyond the M7's dual issue"
                      " (a rounded blog figure, probably another runtime or model)"),
]

# Fitted on the "fit" points: the geometric mean of their cycles per instruction (0.842 and 0.854;
# each alone predicts the other within 1.4 %).
def fitted_cpi(points: list[Point]) -> float:
    return math.exp(sum(math.log(p.cpi) for p in points) / len(points))


_fit = [p for p in CALIBRATION if p.kind == "fit"]
CYCLES_PER_INSTRUCTION = fitted_cpi(_fit)

# A bound too: the paper of the reference CNN (Mohan, Paul and Chirania, arXiv 2011.14858) runs it
# at 30 FPS on the OpenMV H7, camera included: inference at most 33.3 ms.
PAPER_FPS = 30.0


def estimate_ms(instructions: int, clock_hz: float = H7_CLOCK_HZ, cpi: float | None = None) -> float:
    """Counted instructions of one Invoke() to milliseconds on the board."""
    return 1000.0 * instructions * (CYCLES_PER_INSTRUCTION if cpi is None else cpi) / clock_hz


def calibration_rows() -> list[dict]:
    """Each published point against the fitted factor: predicted ms and its error (for a bound:
    whether the prediction stays under it; for a fit point also its error when left out of the fit)."""
    rows = []
    for p in CALIBRATION:
        predicted = estimate_ms(p.instructions, p.clock_hz)
        mac_ms = 1000 * p.macs / 0.4 / p.clock_hz
        others = [q for q in _fit if q is not p]
        loo = None  # a fit point's error when the factor is fitted on the other fit points only
        if p.kind == "fit" and others:
            loo = round(100 * (estimate_ms(p.instructions, p.clock_hz, fitted_cpi(others)) / p.measured_ms - 1), 1)
        rows.append({"name": p.name, "what": p.what, "measured_ms": round(p.measured_ms, 2), "clock_mhz": p.clock_hz / 1e6,
                     "instructions": p.instructions, "macs": p.macs, "cpi": round(p.cpi, 3), "kind": p.kind,
                     "predicted_ms": round(predicted, 2), "error_pct": round(100 * (predicted / p.measured_ms - 1), 1),
                     "leave_one_out_error_pct": loo,
                     "within_bound": predicted <= p.measured_ms if p.kind == "bound" else None,
                     "mac_estimate_ms": round(mac_ms, 2), "mac_error_pct": round(100 * (mac_ms / p.measured_ms - 1), 1),
                     "source": p.source, "note": p.note})
    return rows
