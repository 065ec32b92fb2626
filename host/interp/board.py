"""A model as an OpenMV firmware's interpreter loads and runs it.

`refusals(payload, interpreter)` is the static part: what that firmware refuses before running
anything (ops its resolver lacks, per-channel dense layers, tensor types ml rejects). `load` then
allocates the model in the very TFLM build the firmware links (a wheel in .board-tflm, run in a
persistent child process), so a prepare-time refusal we have no static rule for is caught too.

Where no CPython 3.10/3.11 exists for those wheels, `load` falls back to the static rules and the
host's TFLM (`mode == "static"`), and says so; where the environment could exist but was not
created, it raises one line saying how to create it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from host.errors import UserError
from host.interp import client, env, flatbuf
from host.interp.firmware import ML_IO_TYPES, ML_RESOLVER_OPS, Interpreter

DENSE_FIX = ("quantize dense layers per tensor: converter._experimental_disable_per_channel_quantization_for_dense_layers"
             " = True (python -m host.quantize / host.build do)")


@dataclass(frozen=True)
class Refusal:
    layer: str
    reason: str
    fix: str

    def line(self) -> str:
        return f"layer {self.layer}: {self.reason}; fix: {self.fix}"


class BoardRefusal(UserError):
    """The firmware's interpreter would not load this model (ml.Model / tf.load raise on the board)."""

    def __init__(self, interpreter: Interpreter, refusals: list[Refusal], log: str = ""):
        self.interpreter = interpreter
        self.refusals = refusals
        self.log = log
        super().__init__(f"{interpreter.label} cannot load the model: " + "; ".join(r.line() for r in refusals))


def refusals(payload: bytes, interpreter: Interpreter) -> list[Refusal]:
    found = []
    for layer in flatbuf.layers(payload):
        where = f"{layer.name} ({layer.op}, op #{layer.index})"
        if layer.op not in ML_RESOLVER_OPS and not interpreter.legacy:
            # legacy tf used AllOpsResolver; ml's MicroMutableOpResolver has only its list (firmware.py).
            found.append(Refusal(where, f"op {layer.op} is not in the ml module's op resolver (tflm_backend.cc)",
                                 "replace that layer with one the resolver has"))
        elif layer.op == "CUSTOM":
            found.append(Refusal(where, "custom ops are not registered by OpenMV's resolver", "replace that layer"))
        if layer.op == "FULLY_CONNECTED" and (layer.weight_scales > 1 or layer.bias_scales > 1) and not interpreter.legacy:
            found.append(Refusal(
                where, f"dense weights quantized per channel ({max(layer.weight_scales, layer.bias_scales)} scales):"
                       f" tflite-micro {interpreter.commit} refuses them at allocation (before PR #2673)", DENSE_FIX))
    if not interpreter.legacy:
        io = flatbuf.io_types(payload)
        bad = [f"{kind} {dtype}" for kind, dtype in io if dtype not in ML_IO_TYPES]
        if bad:
            found.append(Refusal("model inputs/outputs", f"{', '.join(bad)} not accepted by ml (ml_backend_valid_dataype)",
                                 "use int8 input and output (host.quantize does)"))
    return found


def run_mode() -> str:
    """"tflm" (the board's TFLM wheels, ready), or "static" (no CPython 3.10/3.11 to run them)."""
    if env.is_ready():
        return "tflm"
    if env.find_base_python() is None:
        return "static"
    env.require()  # raises the one line saying how to create it
    return "tflm"


class BoardModel:
    """The model loaded as the firmware loads it; `raw(inputs)` gives raw outputs, one row per input."""

    def __init__(self, payload: bytes, interpreter: Interpreter, arena_size: int | None = None):
        self.interpreter = interpreter
        self.payload = bytes(payload)
        found = refusals(self.payload, interpreter)
        if found:
            raise BoardRefusal(interpreter, found)
        # libtf computes per-channel dense layers with channel 0's scale (flatbuf.legacy_dense_scales).
        self.runnable = flatbuf.legacy_dense_scales(self.payload) if interpreter.legacy else self.payload
        self.mode = run_mode()
        if self.mode == "tflm":
            try:
                self._loaded = client.load(interpreter.commit, self.runnable, arena_size)
            except client.TFLMError as exc:
                raise BoardRefusal(interpreter, [Refusal("(allocate)", exc.error, "see the TFLM log: " + exc.log.strip()[:200])],
                                   exc.log) from None
            weakref.finalize(self, _free_quietly, self._loaded)  # the worker forgets it with us
            self.input, self.output = self._loaded.input, self._loaded.output
        else:
            from host.tflm import Int8Model

            self._host = Int8Model(self.runnable, arena_size=arena_size)
            self.input = _details(self._host.input)
            self.output = _details(self._host.output)

    @property
    def label(self) -> str:
        if self.mode == "static":
            return f"{self.interpreter.label}: static check only, run on the host's TFLM (no CPython 3.10/3.11 for the board wheels)"
        return self.interpreter.label

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        if self.mode == "tflm":
            return self._loaded.raw(inputs)
        shape = tuple(self.input["shape"])
        batch = np.asarray(inputs).reshape((-1,) + shape[1:])
        return np.stack([self._host.raw(x) for x in batch]) if len(batch) else np.zeros((0, 0), np.int8)

    def close(self) -> None:
        if self.mode == "tflm":
            _free_quietly(self._loaded)


def _free_quietly(loaded) -> None:
    try:
        loaded.free()
    except (client.TFLMError, OSError, ValueError):
        pass  # the worker is gone already


def _details(d: dict) -> dict:
    q = d.get("quantization_parameters") or {}
    return {"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
            "scales": [float(v) for v in q.get("scales", [])], "zero_points": [int(v) for v in q.get("zero_points", [])]}


def load(payload: bytes, interpreter: Interpreter, arena_size: int | None = None) -> BoardModel:
    return BoardModel(payload, interpreter, arena_size)


def arena_bytes(payload: bytes, interpreter: Interpreter) -> int:
    """Smallest tensor arena (to 256 bytes) with which the board's TFLM build allocates and runs the
    model, one child process per probe (host.tflm.search_arena)."""
    import subprocess
    import tempfile

    from host.tflm import search_arena

    runnable = flatbuf.legacy_dense_scales(payload) if interpreter.legacy else bytes(payload)
    python = env.require()
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(runnable)
        f.flush()

        def fits(size: int) -> bool:
            child = subprocess.run([str(python), str(client.WORKER), str(env.wheel_dir(interpreter.commit)), "--probe",
                                    f.name, str(size)], capture_output=True, text=True, check=False)
            return child.returncode == 0 and child.stdout.strip() == "fits"

        return search_arena(fits, 4096, 16 * 1024 * 1024)
