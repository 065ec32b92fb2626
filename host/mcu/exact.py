"""Bit-exactness: the board's compiled kernels (emulated) against the host's interpreters.

Three raw int8 outputs per input: the emulated harness (openmv/libtflm 73eb1aa, CMSIS-NN for the
Cortex-M7), the board-TFLM wheel (tflite-micro a57349f, portable reference kernels on x86:
host/interp, what `host.tflm.board_exact` verifies against) and the host's own TFLM wheel
(host.tflm.Int8Model, a 2026 build)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from host.mcu import runner

FIRMWARE = "4.8.1"  # links openmv/libtflm 73eb1aa (boards/openmv_h7.json)


@dataclass
class Report:
    total: int
    identical_board_wheel: int | None  # None: the wheel could not run here
    identical_host: int | None
    board_label: str = ""
    differing: list[dict] = field(default_factory=list)  # first 10: index, mcu, wheel, host
    mcu_seconds: float = 0.0
    distinct_outputs: int = 0
    note: str = ""

    @property
    def all_identical(self) -> bool:
        return self.identical_board_wheel in (None, self.total) and self.identical_host in (None, self.total)

    def lines(self) -> list[str]:
        out = []
        if self.identical_board_wheel is not None:
            out.append(f"board libtflm (emulated M7) vs {self.board_label}: {self.identical_board_wheel}/{self.total} raw int8 outputs identical")
        if self.identical_host is not None:
            out.append(f"board libtflm (emulated M7) vs host TFLM (Int8Model): {self.identical_host}/{self.total} identical")
        if self.note:
            out.append(self.note)
        out.append(f"{self.distinct_outputs} distinct output vectors; emulation {self.mcu_seconds:.1f} s"
                   f" ({self.mcu_seconds / max(1, self.total):.3f} s per inference)")
        for d in self.differing:
            out.append(f"  differs at #{d['index']}: mcu {d['mcu']} board wheel {d.get('wheel')} host {d.get('host')}")
        return out


def compare(payload: bytes, int8_inputs: np.ndarray, with_wheel: bool = True, with_host: bool = True) -> Report:
    x = np.asarray(int8_inputs, np.int8)
    n = len(x)
    mcu = runner.run(payload, x.reshape(n, -1))
    ours = mcu.raw.reshape(n, -1)
    report = Report(total=n, identical_board_wheel=None, identical_host=None, mcu_seconds=mcu.emulation_seconds,
                    distinct_outputs=len({r.tobytes() for r in ours}))
    wheel = host = None
    if with_wheel:
        from host.interp import board, firmware

        interp = firmware.interpreter_for(FIRMWARE)
        model = board.load(payload, interp)
        if model.mode == "tflm":
            wheel = np.asarray(model.raw(x)).reshape(n, -1)
            report.board_label = model.label
            report.identical_board_wheel = int((wheel == ours).all(1).sum())
        else:
            report.note = f"board TFLM wheel not run: {model.label}"
    if with_host:
        from host.tflm import Int8Model

        m = Int8Model(payload)
        host = np.stack([m.raw(row) for row in x]).reshape(n, -1)
        report.identical_host = int((host == ours).all(1).sum())
    for i in range(n):
        differs = (wheel is not None and not np.array_equal(wheel[i], ours[i])) or (
            host is not None and not np.array_equal(host[i], ours[i]))
        if differs and len(report.differing) < 10:
            report.differing.append({"index": i, "mcu": ours[i].tolist(),
                                     "wheel": None if wheel is None else wheel[i].tolist(),
                                     "host": None if host is None else host[i].tolist()})
    return report
