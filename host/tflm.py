"""The int8 model run by TensorFlow Lite Micro, the interpreter (and kernels) the board runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from host import preprocess


class Int8Model:
    """An int8 .tflite loaded into the TFLM Python interpreter.

    `score(pixels)` takes the board's uint8 32x32x3 pixels, feeds `pixel - 128` exactly as OpenMV
    does (whatever the input scale says) and returns the dequantized outputs, as `ml.Model.predict`.
    """

    def __init__(self, model: bytes | Path | str, arena_size: int | None = None):
        self.model_bytes = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        self.interpreter = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=arena_size)
        self.input = self.interpreter.get_input_details(0)
        self.output = self.interpreter.get_output_details(0)
        self.output_scale, self.output_zero_point = _quantization(self.output)

    def raw(self, int8_input: np.ndarray) -> np.ndarray:
        self.interpreter.set_input(int8_input.reshape(self.input["shape"]).astype(np.int8), 0)
        self.interpreter.invoke()
        return self.interpreter.get_output(0).reshape(-1)

    def dequantized(self, int8_input: np.ndarray) -> np.ndarray:
        q = self.raw(int8_input).astype(np.float32)
        return (q - self.output_zero_point) * self.output_scale

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (n, 32, 32, 3) or (32, 32, 3) to dequantized outputs (n, k)."""
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
