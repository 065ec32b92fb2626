"""Fake `ml` (firmware 4.5.6+) and legacy `tf` (up to 4.5.5) modules over the interpreter that
firmware links (host/interp): the exact tflite-micro build, run in a persistent worker.

- Loading: the model goes through that TFLM (`host.interp.board.load`). What the board refuses
  fails here the same way: `ml.Model` raises `ValueError("Failed to allocate tensors")`
  (tflm_backend.cc, openmv v4.5.6 to v5.0.0), e.g. for a per-channel dense layer on 4.5.6 to 4.8.1;
  legacy `tf.load` raises OSError with TFLM's message (py_tf.c v4.5.5 raises the error text).
- Legacy libtf (up to 4.5.5) loads a per-channel dense layer but computes every unit with channel
  0's scale; the simulator emulates it by rewriting those scales to channel 0's before loading
  (host.interp.flatbuf.legacy_dense_scales), which tflite-micro of 2024-02 (cfa4c91) matches.
- Input: the documented OpenMV path (docs/platform.md items 1 and 2): the image is drawn into
  the model's HxW input with bilinear sampling, RGB565 expanded to RGB888 by bit replication
  (`preprocess.board_downscale(...)`), and an int8 model gets pixel - 128 whatever its input scale
  says. Outputs are dequantized `(q - zp) * scale`.
"""

from __future__ import annotations

import hashlib
import types

import numpy as np

from host import preprocess
from host.errors import UserError
from host.interp import board as board_interp
from host.interp import firmware
from host.interp.env import MissingEnvironment
from host.sim import heap
from host.sim.board import Board, Prediction
from host.sim.camera import SimImage

DTYPE_CODES = {np.int8: "b", np.uint8: "B", np.int16: "h", np.uint16: "H", np.float32: "f"}


# The board's TFLM wheels are unoptimized builds (bazel fastbuild: 30 to 100 ms per invoke here), so
# the simulator runs each model's first VERIFY_INVOKES frames in the board's TFLM *and* in LiteRT's
# optimized kernels (no XNNPACK), and goes on with LiteRT alone only if every raw output was equal;
# one difference and that model stays on the board's TFLM for the whole process. host.build has
# shown the same equality on the whole test split.
VERIFY_INVOKES = 16


class _Exactness:
    def __init__(self, runnable: bytes):
        from host.tflm import HOST_CANDIDATES, LiteRTModel

        try:
            self.fast = LiteRTModel(runnable, HOST_CANDIDATES[0])
        except (RuntimeError, ValueError):  # LiteRT cannot run it: board TFLM only
            self.fast = None
        self.shown = 0
        self.differs = self.fast is None

    def raw(self, model, q: np.ndarray) -> np.ndarray:
        if not self.differs and self.shown >= VERIFY_INVOKES:
            return self.fast.raw(q)
        out = model.raw(q)
        if not self.differs:
            if np.array_equal(self.fast.raw(q), out):
                self.shown += 1
            else:
                self.differs = True
        return out


_EXACTNESS: dict[tuple[str, str], _Exactness] = {}


class _Net:
    """The loaded model and the run-time behaviour both APIs share."""

    def __init__(self, board: Board, path: str):
        board.check_alive()
        data = board.storage.read_bytes(path)  # OSError(ENOENT) when missing, as open() on the board
        self.interpreter = firmware.interpreter_for(board.version, getattr(board, "board_name", None))
        legacy = self.interpreter.legacy
        try:
            self.model = board_interp.load(data, self.interpreter)
        except board_interp.BoardRefusal as exc:
            if legacy:  # py_tf.c raises OSError with TFLM's own error text
                raise OSError(exc.log.strip().splitlines()[0] if exc.log.strip() else str(exc)) from None
            raise ValueError("Failed to allocate tensors") from None
        except MissingEnvironment:
            raise
        except UserError as exc:  # not a whole flatbuffer (a cut copy): what TFLM then does is undefined
            raise (OSError if legacy else ValueError)(f"Failed to load model {path}: {exc}") from None
        self.board = board
        self.path = path
        self.nbytes = len(data)
        self.input = self.model.input
        self.output = self.model.output
        shape = tuple(int(d) for d in self.input["shape"])
        self.input_shape = shape
        self.output_shape = tuple(int(d) for d in self.output["shape"])
        self.input_scale = float(self.input["scales"][0]) if self.input["scales"] else 0.0
        self.input_zero_point = int(self.input["zero_points"][0]) if self.input["zero_points"] else 0
        self.input_dtype = np.dtype(self.input["dtype"]).type
        self.output_scale = float(self.output["scales"][0]) if self.output["scales"] else 0.0
        self.output_zero_point = int(self.output["zero_points"][0]) if self.output["zero_points"] else 0
        key = (hashlib.sha256(self.model.runnable).hexdigest(), self.interpreter.label)
        self.exactness = _EXACTNESS.setdefault(key, _Exactness(self.model.runnable))
        board.clock.advance(20)

    def run(self, img) -> np.ndarray:
        board = self.board
        board.check_alive()
        if not isinstance(img, SimImage):
            raise TypeError("the simulator's model accepts image.Image inputs only")
        _, h, w, c = self.input_shape
        if h != w or c != 3:
            raise ValueError(f"simulated input path needs a square RGB input, not {self.input_shape}")
        board.clock.advance(board.costs.scale_ms_for(h) + board.costs.inference_ms)
        faults = board.faults
        if faults.inference is not None and img.frame_index in faults.inference:
            raise RuntimeError("Invoke failed.")  # a TFLM error surfaces as an exception on the board
        pixels = preprocess.board_downscale(img.rgb888(), size=h)
        if self.input_dtype is np.int8:
            q = preprocess.to_int8_input(pixels)
        elif self.input_dtype is np.uint8:
            q = pixels
        else:
            raise ValueError("the simulator runs int8 and uint8 models only")
        raw = self.exactness.raw(self.model, q[None])[0]
        if np.dtype(self.output["dtype"]) == np.float32:
            outputs = raw.astype(np.float32)
        else:
            outputs = ((raw.astype(np.float32) - self.output_zero_point) * self.output_scale).astype(np.float32)
        frame = board.frames.frame(img.frame_index)
        board.predictions.append(Prediction(img.frame_index, frame.path, outputs.tolist(), board.boot))
        return outputs.reshape(self.output_shape)


def wrapper_labels(raw: bytes) -> list[str]:
    """`model.labels` as the 4.7+ `ml.Model` wrapper reads it: `[line.rstrip('\\n') for line in
    open(path, "r")]` (scripts/libraries/ml/ml/model.py v4.7.0, ml-core/ml/model.py v4.8.0 / v4.8.1).
    MicroPython's text files split lines at '\\n' only, so a blank line is an empty label, a CRLF
    file keeps its '\\r' and spaces stay; any exception leaves `labels` None."""
    lines = raw.decode().split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def make_ml(board: Board) -> types.ModuleType:
    mod = types.ModuleType("ml")
    with_labels = board.version >= (4, 7, 0)

    class Model:
        def __init__(self, path, load_to_fb=False, postprocess=None):
            board.calls["ml.Model"] += 1
            try:
                net = _Net(board, path)
            except ValueError:  # refused after fb_alloc_all: leaks on 4.5.6-4.5.9 like a MemoryError
                heap.refused_load(board.memory)
                raise
            self._memory = heap.load_model(board.memory, net.nbytes, "ml", path, to_fb=bool(load_to_fb))  # as the board
            self._net = net
            dtype = DTYPE_CODES.get(net.input_dtype, "b")
            self.len = net.nbytes
            self.ram = 0  # the arena size is not modelled
            self.input_shape = (net.input_shape,)
            self.input_dtype = (dtype,)
            self.input_scale = (net.input_scale,)
            self.input_zero_point = (net.input_zero_point,)
            self.output_shape = (net.output_shape,)
            self.output_dtype = (DTYPE_CODES.get(np.dtype(net.output["dtype"]).type, "b"),)
            self.output_scale = (net.output_scale,)
            self.output_zero_point = (net.output_zero_point,)
            self.labels = None
            if with_labels:  # >= 4.7 loads "<path before the first '.'>.txt"
                try:
                    self.labels = wrapper_labels(board.storage.read_bytes(path.split(".")[0] + ".txt"))
                except (OSError, UnicodeError):
                    pass

        def predict(self, inputs, callback=None):
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
                raise ValueError("predict() expects a list with one input")
            try:
                return [self._net.run(inputs[0])]
            except Exception:
                heap.inference_failed(board.memory)
                raise

        def __del__(self):  # the GC frees the model's file copy and arena
            if getattr(self, "_memory", None) is not None:
                self._memory.free()

    mod.Model = Model
    mod.Normalization = lambda *a, **k: _unsupported("ml.Normalization")
    return mod


def _unsupported(what):
    raise NotImplementedError(f"the tinymask simulator does not model {what}")


class _Classification:
    def __init__(self, outputs: list[float], w: int, h: int):
        self._outputs = outputs
        self._rect = (0, 0, w, h)

    def output(self) -> list[float]:
        return list(self._outputs)

    classification_output = output  # the name the documentation uses

    def rect(self):
        return self._rect

    def x(self):
        return 0

    def y(self):
        return 0

    def w(self):
        return self._rect[2]

    def h(self):
        return self._rect[3]


def make_tf(board: Board, ml_module: types.ModuleType | None) -> types.ModuleType:
    """Up to 4.5.5: the tf module. From 4.5.6 `tf` is only an alias of `ml` (no load/classify)."""
    if ml_module is not None:
        return ml_module
    mod = types.ModuleType("tf")

    class TfModel:
        def __init__(self, path, load_to_fb=False):
            self._net = _Net(board, path)
            self._memory = heap.load_model(board.memory, self._net.nbytes, "tf", path, to_fb=bool(load_to_fb))

        def __del__(self):
            if getattr(self, "_memory", None) is not None:
                self._memory.free()

        def len(self):
            return self._net.nbytes

        def ram(self):
            return 0

        def input_height(self):
            return self._net.input_shape[1]

        def input_width(self):
            return self._net.input_shape[2]

        def input_channels(self):
            return self._net.input_shape[3]

        def input_datatype(self):
            return {np.int8: "int8", np.uint8: "uint8"}.get(self._net.input_dtype, "float")

        def input_scale(self):
            return self._net.input_scale

        def input_zero_point(self):
            return self._net.input_zero_point

        def output_channels(self):
            return int(np.prod(self._net.output_shape))

        def classify(self, img, roi=None, min_scale=1.0, scale_mul=0.5, x_overlap=0, y_overlap=0):
            if roi is not None or min_scale != 1.0:
                _unsupported("tf.classify with a roi or min_scale")
            outputs = self._net.run(img).reshape(-1).tolist()
            return [_Classification(outputs, img.width(), img.height())]

    def load(path, load_to_fb=False):
        board.calls["tf.load"] += 1
        return TfModel(path, load_to_fb)

    mod.load = load
    mod.classify = lambda model, img, **kw: (model if isinstance(model, TfModel) else TfModel(model)).classify(img, **kw)
    mod.free_from_fb = lambda: None
    return mod
