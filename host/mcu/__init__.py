"""The board's own compiled TFLM on an emulated Cortex-M7 (issue 15; docs/mcu.md).

- `mcu/` (repo root): the bare-metal harness sources and `mcu/build.sh`, which links OpenMV's
  prebuilt `libtflm-cortex-m7+fp-release.a` (openmv/libtflm 73eb1aa, firmware 4.6.0-4.8.1) into
  `host/mcu/elf/harness-release.elf` (committed, with its manifest and sha256s).
- `emu`: runs that ELF in unicorn (Cortex-M7, double precision completed by `fpu64`), counting
  instructions per block and at the harness's per-op MMIO markers.
- `runner`: a .tflite and int8 inputs in, raw int8 outputs, instruction counts and refusals out.
- `exact`: raw outputs against the board-TFLM wheel and the host TFLM (x/N identical).
- `latency`: counted instructions to H7 milliseconds, calibrated on published Cortex-M7 timings.
- `python -m host.mcu run|compare|info|build`.

`estimate(payload)` is the one call a build table needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Estimate:
    instructions: int  # one Invoke() on an all-zero input
    ms: float  # instructions x latency.CYCLES_PER_INSTRUCTION at clock_hz
    mac_ms: float  # the old figure: MACs / 0.4 MAC per cycle
    ops: list = field(default_factory=list)  # runner.OpCount per node
    overhead_instructions: int = 0
    cycles_per_instruction: float = 0.0


def estimate(payload: bytes, clock_hz: float = 480e6, macs_per_cycle: float = 0.4) -> Estimate:
    """Counted instructions and calibrated H7 milliseconds of one inference of `payload` (about
    0.5 s of emulation for the reference CNN). Raises runner.McuRefusal (a UserError, one line)
    when the board's library refuses the model, emu.INSTALL_HINT when unicorn is missing."""
    import numpy as np

    from host.mcu import latency, models, runner

    info = runner.probe(payload)
    result = runner.run(payload, np.zeros((1, info.input_bytes), np.int8), count=1)
    return Estimate(instructions=result.instructions, ms=latency.estimate_ms(result.instructions, clock_hz),
                    mac_ms=1000.0 * models.macs(payload) / macs_per_cycle / clock_hz, ops=result.ops,
                    overhead_instructions=result.overhead_instructions,
                    cycles_per_instruction=latency.CYCLES_PER_INSTRUCTION)


def card_fields(payload: bytes, clock_hz: float = 480e6) -> dict:
    """The build card's `estimate.counted`: instructions counted on the emulated Cortex-M7 running
    the board's library, and the calibrated milliseconds; or why it was not counted (no emulator,
    or a model the library refuses, which the board check reports on its own)."""
    from host.errors import UserError

    try:
        result = estimate(payload, clock_hz)
    except UserError as exc:
        return {"instructions": None, "ms": None, "why": str(exc)}
    return {"instructions": result.instructions, "ms": round(result.ms, 2),
            "cycles_per_instruction": round(result.cycles_per_instruction, 3),
            "ops": [{"op": o.op, "instructions": o.instructions} for o in result.ops],
            "source": "libtflm-cortex-m7+fp-release.a (openmv/libtflm 73eb1aa) on an emulated Cortex-M7;"
                      " cycles per instruction calibrated on two published Cortex-M7 timings: CMSIS-NN 2018 and TinyEngine's H743 table (docs/mcu.md)"}
