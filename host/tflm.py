"""Running int8 models on the host with the board's numbers.

- `BoardExactModel` / `board_exact`: raw int8 outputs equal to the board's own TFLM (host/interp), as
  fast as can be shown. The model runs once in the board's TFLM on the verification inputs (the test
  split); LiteRT with its optimized integer kernels and no XNNPACK delegate, then LiteRT's reference
  kernels, are kept only if every raw output equals the board's; otherwise the board TFLM itself
  runs everything. XNNPACK is never used: it requantizes in float and changes outputs.
- `Int8Model`: the host's own TFLM wheel (a 2026 build), used for arena probes and quick looks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from host import preprocess


class Int8Model:
    """An int8 .tflite loaded into the TFLM Python interpreter.

    `score(pixels)` takes the board's uint8 SxSx3 pixels (S: `input_size`, 32 for most designs), feeds
    `pixel - 128` exactly as OpenMV does (whatever the input scale says) and returns the dequantized
    outputs, as `ml.Model.predict`.
    """

    def __init__(self, model: bytes | Path | str, arena_size: int | None = None):
        self.model_bytes = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        self.interpreter = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=arena_size)
        self.input = self.interpreter.get_input_details(0)
        self.output = self.interpreter.get_output_details(0)
        self.output_scale, self.output_zero_point = _quantization(self.output)

    @property
    def input_size(self) -> int:
        """The side of the model's square input: the size its pictures are decoded at."""
        return int(self.input["shape"][1])

    def raw(self, int8_input: np.ndarray) -> np.ndarray:
        self.interpreter.set_input(int8_input.reshape(self.input["shape"]).astype(np.int8), 0)
        self.interpreter.invoke()
        return self.interpreter.get_output(0).reshape(-1)

    def dequantized(self, int8_input: np.ndarray) -> np.ndarray:
        q = self.raw(int8_input).astype(np.float32)
        return (q - self.output_zero_point) * self.output_scale

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (n, S, S, 3) or (S, S, 3), S the model's input side, to dequantized outputs (n, k)."""
        batch = pixels.reshape((-1,) + pixels.shape[-3:])
        return np.stack([self.dequantized(preprocess.to_int8_input(p)) for p in batch])


def _quantization(details: dict) -> tuple[float, int]:
    q = details.get("quantization_parameters") or {}
    scales = q.get("scales")
    zero_points = q.get("zero_points")
    if scales is not None and len(scales):
        return float(scales[0]), int(zero_points[0])
    scale, zero_point = details.get("quantization", (1.0, 0))
    return float(scale), int(zero_point)


# TFLM's Python interpreter does not always fail cleanly when an arena is too small for a model with
# many tensors: at some sizes it segfaults (a SqueezeNet at 8 KiB) or corrupts its own heap so that
# the next probe in the same process fails. So every probe runs in a fresh child process (about
# 0.4 s each); a child that crashes means "does not fit".
_ARENA_PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
payload = open(sys.argv[1], "rb").read()
try:
    runtime.Interpreter.from_bytes(payload, arena_size=int(sys.argv[2])).invoke()
except (RuntimeError, ValueError):
    sys.exit(3)
print("fits", flush=True)
"""


def arena_bytes(model: bytes, start: int = 4096, limit: int = 16 * 1024 * 1024) -> int:
    """Smallest tensor arena (to 256 bytes) with which TFLM allocates and runs the model."""
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(model)
        f.flush()

        def fits(size: int) -> bool:
            child = subprocess.run([sys.executable, "-c", _ARENA_PROBE, f.name, str(size)],
                                   capture_output=True, text=True, check=False)
            return child.returncode == 0 and child.stdout.strip() == "fits"

        return search_arena(fits, start, limit)


def search_arena(fits, start: int, limit: int) -> int:
    """Doubling then bisection to 256 bytes, over a `fits(size)` predicate."""
    high = start
    while not fits(high):
        high *= 2
        if high > limit:
            raise RuntimeError(f"model needs a tensor arena above {limit} bytes")
    low = high // 2 if high > start else 0
    while high - low > 256:
        mid = (low + high) // 2 // 256 * 256
        if mid <= low:
            break
        if fits(mid):
            high = mid
        else:
            low = mid
    return high


@contextlib.contextmanager
def quiet_stderr():
    """Silence TFLM's C-level 'Failed to allocate' lines while probing arena sizes."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ---- board-exact evaluation -------------------------------------------------------------------

HOST_CANDIDATES = ("LiteRT optimized kernels, no XNNPACK", "LiteRT reference kernels")


class LiteRTModel:
    """LiteRT without default delegates (so no XNNPACK), one image per invoke (the model's batch is 1)."""

    def __init__(self, payload: bytes, kind: str):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = {HOST_CANDIDATES[0]: OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                    HOST_CANDIDATES[1]: OpResolverType.BUILTIN_REF}[kind]
        self.kind = kind
        self.interpreter = Interpreter(model_content=bytes(payload), experimental_op_resolver_type=resolver, num_threads=1)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        shape = tuple(self._in["shape"])
        batch = np.asarray(inputs, dtype=self._in["dtype"]).reshape((-1,) + shape[1:])
        out = np.empty((len(batch), int(np.prod(self._out["shape"]))), dtype=self._out["dtype"])
        set_tensor, invoke, get = self.interpreter.set_tensor, self.interpreter.invoke, self.interpreter.get_tensor
        for i, x in enumerate(batch):
            set_tensor(self._in["index"], x.reshape(shape))
            invoke()
            out[i] = get(self._out["index"]).reshape(-1)
        return out


@dataclass
class Verification:
    """How the host's interpreter compares with the board's TFLM on the verification inputs."""

    board: str  # the board interpreter's label
    mode: str  # "tflm" (the board's wheel ran) or "static" (no CPython 3.10/3.11: host TFLM + static rules)
    candidate: str  # the fastest host interpreter tried
    identical: int  # rows where its raw outputs equal the board's
    total: int
    differing: list[dict] = field(default_factory=list)  # {"index", "host", "board"} for the first 10
    used: str = ""  # what host evaluation uses for this model

    def line(self) -> str:
        head = "board TFLM" if self.mode == "tflm" else "board TFLM (static check only, no CPython 3.10/3.11: host TFLM)"
        text = f"{head} {self.board}: {self.identical}/{self.total} raw int8 outputs identical to host ({self.candidate})"
        if self.differing:
            text += "; differing: " + ", ".join(f"#{d['index']} host {d['host']} board {d['board']}" for d in self.differing)
        if self.used != self.candidate:
            text += f"; evaluation uses {self.used}"
        return text


class BoardExactModel:
    """An int8 model whose `raw` outputs are the board TFLM's, by the fastest interpreter shown equal."""

    def __init__(self, payload: bytes, verify_inputs: np.ndarray, interpreter=None):
        from host.interp import board as board_interp
        from host.interp import firmware

        self.interpreter = interpreter or firmware.interpreter_for(firmware_default())
        self.board = board_interp.load(payload, self.interpreter)  # BoardRefusal when the firmware cannot load it
        self.input, self.output = self.board.input, self.board.output
        self.output_scale = self.output["scales"][0] if self.output["scales"] else 1.0
        self.output_zero_point = self.output["zero_points"][0] if self.output["zero_points"] else 0
        inputs = np.asarray(verify_inputs, dtype=np.int8).reshape((-1,) + tuple(self.input["shape"][1:]))
        self.verify_inputs = inputs
        self.board_raw = self.board.raw(inputs)
        self.fast = None
        self.verification = None
        for kind in HOST_CANDIDATES:
            candidate = LiteRTModel(self.board.runnable, kind)
            raw = candidate.raw(inputs)
            same = (raw == self.board_raw).all(axis=1)
            if self.verification is None:
                self.verification = Verification(
                    board=self.board.label, mode=self.board.mode, candidate=kind, identical=int(same.sum()), total=len(same),
                    differing=[{"index": int(i), "host": raw[i].tolist(), "board": self.board_raw[i].tolist()}
                               for i in np.flatnonzero(~same)[:10]])
            if same.all():
                self.fast = candidate
                self.verification.used = kind
                break
        if self.fast is None:
            self.verification.used = "the board TFLM itself (LiteRT differs)"

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        return (self.fast or self.board).raw(inputs)

    def dequantized(self, inputs: np.ndarray) -> np.ndarray:
        return (self.raw(inputs).astype(np.float32) - self.output_zero_point) * self.output_scale

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (n, S, S, 3) or (S, S, 3), S the model's input side, to dequantized outputs (n, k)."""
        return self.dequantized(preprocess.to_int8_input(pixels.reshape((-1,) + pixels.shape[-3:])))

    def verified_scores(self) -> np.ndarray:
        """Dequantized board outputs on the verification inputs (what the board computed)."""
        return (self.board_raw.astype(np.float32) - self.output_zero_point) * self.output_scale


def firmware_default(board: str = "openmv_h7") -> str:
    from host.boards import load_board

    return load_board(board)["firmware"]["default_version"]


_verified: dict[tuple[str, str], BoardExactModel] = {}


def board_exact(payload: bytes, verify_pixels: np.ndarray | None = None, interpreter=None) -> BoardExactModel:
    """The board-exact model for `payload`, verified on `verify_pixels` the first time it is asked for
    (kept per process, so later calls on other pixels, e.g. degraded copies, run fast)."""
    from host.interp import firmware

    interpreter = interpreter or firmware.interpreter_for(firmware_default())
    key = (hashlib.sha256(bytes(payload)).hexdigest(), interpreter.label)
    model = _verified.get(key)
    if model is None:
        if verify_pixels is None:
            raise ValueError("board_exact: the first call for a model needs the pixels to verify it on")
        model = _verified[key] = BoardExactModel(payload, preprocess.to_int8_input(verify_pixels), interpreter)
    return model
