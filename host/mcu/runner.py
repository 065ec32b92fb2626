"""A .tflite on the emulated board: raw int8 outputs, instruction counts, the library's errors.

`run(payload, int8_inputs)` runs every input through the harness (the board's release libtflm,
uncounted, about 0.04 s per tinymask inference) and, with `count=K`, the first K inputs again with
the instruction-counting hook (about 0.5 s each). A model the library refuses raises `McuRefusal`
with one line: what the board itself says ("Failed to allocate tensors", tflm_backend.cc) and the
library's own log, taken from the same commit's `release_with_logs` build (the release build strips
its error strings, as on the camera).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from host.errors import UserError
from host.interp import flatbuf
from host.mcu import emu, layout

BATCH = 256  # inputs per emulator start: the model is parsed and allocated once per batch


class McuRefusal(UserError):
    """The board's library refused the model (the camera's ml.Model() would raise)."""

    def __init__(self, board_message: str, library_message: str):
        self.board_message = board_message
        self.library_message = library_message
        text = f"board libtflm: {board_message}"
        if library_message and library_message != board_message:
            text += f": {library_message}"
        super().__init__(text)


@dataclass
class OpCount:
    index: int
    op: str
    name: str
    instructions: int


@dataclass
class McuResult:
    raw: np.ndarray  # (n, outputs) int8
    input_bytes: int
    arena_used: int
    invoke_instructions: list[int] = field(default_factory=list)  # per counted input
    ops: list[OpCount] = field(default_factory=list)  # per node, for the first counted input
    emulation_seconds: float = 0.0  # uncounted runs, all inputs
    counted_seconds: float = 0.0  # counted runs, all counted inputs
    double_fp_emulated: int = 0

    @property
    def instructions(self) -> int:
        """Instructions of one Invoke() (the first counted input)."""
        return self.invoke_instructions[0] if self.invoke_instructions else 0

    @property
    def overhead_instructions(self) -> int:
        """Instructions inside Invoke() but outside every op's invoke: the interpreter's own loop."""
        return self.instructions - sum(o.instructions for o in self.ops)


def manifest() -> dict:
    return json.loads((emu.PACKAGE / "elf" / "manifest.json").read_text())


def _harness(variant: str = "release") -> emu.Harness:
    key = ("harness", variant)
    if key not in _CACHE:
        _CACHE[key] = emu.Harness(emu.DEFAULT_ELF if variant == "release" else emu.LOGS_ELF)
    return _CACHE[key]


_CACHE: dict = {}


def _check(run: emu.Run, payload: bytes) -> None:
    if run.ok:
        return
    board_message = layout.STATUS.get(run.status, f"status {run.status:#x}")
    library_message = ""
    if run.status in (2, 3, 5):
        logs = _harness("release_with_logs").run(payload, None)
        lines = [line.strip() for line in logs.console.splitlines() if line.strip()]
        # The library's own reason: the first line that is not the harness's summary.
        reasons = [line for line in lines if line not in layout.STATUS.values()]
        library_message = reasons[0] if reasons else ""
    raise McuRefusal(board_message, library_message)


def probe(payload: bytes) -> emu.Run:
    """Parse and allocate only: input size, arena used, or the refusal."""
    flatbuf.parse(payload)  # a file that is no .tflite at all: the parser's one line, before the board's
    run = _harness().run(payload, None)
    _check(run, payload)
    return run


def run(payload: bytes, inputs: np.ndarray, count: int = 0) -> McuResult:
    payload = bytes(payload)
    info = probe(payload)
    x = np.ascontiguousarray(np.asarray(inputs)).view(np.int8).reshape(len(inputs), -1)
    if x.shape[1] != info.input_bytes:
        raise UserError(f"inputs have {x.shape[1]} bytes each; the model wants {info.input_bytes}")
    harness = _harness()
    raws, seconds = [], 0.0
    for start in range(0, len(x), BATCH):
        r = harness.run(payload, x[start:start + BATCH])
        _check(r, payload)
        raws.append(r.outputs)
        seconds += r.seconds
    raw = np.concatenate(raws) if raws else np.zeros((0, 0), np.int8)
    result = McuResult(raw=raw, input_bytes=info.input_bytes, arena_used=info.arena_used, emulation_seconds=seconds)
    if count:
        counted = harness.run(payload, x[:count], count=True)
        _check(counted, payload)
        if not np.array_equal(counted.outputs, raw[:count]):
            raise UserError("the counted run gave different outputs from the uncounted one (emulator bug)")
        result.invoke_instructions = counted.invoke_instructions
        result.counted_seconds = counted.seconds
        layers = flatbuf.layers(payload)
        per_node = counted.op_instructions[0] if counted.op_instructions else []
        result.ops = [OpCount(i, layers[i].op if i < len(layers) else "?", layers[i].name if i < len(layers) else "?", n)
                      for i, n in enumerate(per_node)]
    return result
