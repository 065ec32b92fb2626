"""Which interpreter each OpenMV firmware links, and the operators its resolver registers.

The firmware ranges live in each board profile's `interpreters` list (boards/*.json), with their
sources. Facts from OpenMV's source:
- `ml` (4.5.6 on) registers its ops in `ml_backend_init_ops_resolver` (openmv/openmv
  `src/lib/tflm/tflm_backend.cc` v4.5.6 to v4.6.0, `lib/tflm/tflm_backend.cc` v4.7.0 to v5.0.0; the
  same list in every tag). `ML_RESOLVER_OPS` below is that list as builtin operator names; the
  signal-library ops it also adds (Energy, FilterBank, Rfft, ...) are custom ops tinymask never uses.
- TFLM finds a builtin op by its code alone, never by its version (tensorflow/lite/micro/
  micro_mutable_op_resolver.h, `FindOp(tflite::BuiltinOperator op)`); an op version the kernel cannot
  run fails in its Prepare, which only running the model in that TFLM shows (host/interp/board.py).
- libtflm builds TFLM with CMSIS-NN kernels for the Cortex-M7 (openmv/libtflm
  `.github/workflows/tflm.yml`, `kernel: cmsis_nn`); the Python wheels run TFLM's reference kernels,
  to which TFLM's kernel tests hold CMSIS-NN (int8, bit for bit). Not measured on a camera.
"""

from __future__ import annotations

from dataclasses import dataclass

from host.boards import BoardProfile, load_board
from host.errors import UserError

ML_RESOLVER_OPS = frozenset("""
ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV
FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION
L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC
MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE
READ_VARIABLE REDUCE_MAX RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR ROUND RSQRT
SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV
UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE
""".split())

# ml_backend_valid_dataype (tflm_backend.cc): the tensor types ml accepts for inputs and outputs.
ML_IO_TYPES = frozenset({"uint8", "int8", "uint16", "int16", "float32"})

DEFAULT_BOARD = "openmv_h7"


def parse_version(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.strip().lstrip("v").split("."))
    except ValueError:
        raise UserError(f"firmware version {text!r} is not like 4.6.0") from None
    return (parts + (0, 0, 0))[:3]


@dataclass(frozen=True)
class Interpreter:
    """The TFLM a firmware range links. `commit` is the tflite-micro build run for it (a wheel in
    .board-tflm); `legacy` means libtf, emulated by rewriting per-channel dense scales first."""

    firmware: str
    api: str
    library: str
    commit: str
    wheel: str
    legacy: bool
    source: str

    @property
    def label(self) -> str:
        if self.legacy:
            return f"libtf 2024-02 (firmware {self.firmware}, emulated on tflite-micro {self.commit})"
        return f"tflite-micro {self.commit} (firmware {self.firmware})"


def interpreters(board: BoardProfile) -> list[Interpreter]:
    entries = board.data.get("interpreters")
    if not entries:
        raise UserError(f"board profile {board.name} lacks 'interpreters'; copy the list from boards/openmv_h7.json")
    return [Interpreter(firmware=e["firmware"], api=e["api"], library=e["library"], commit=e["tflite_micro"],
                        wheel=e["wheel"], legacy=bool(e.get("legacy")), source=e["source"]) for e in entries]


def interpreter_for(version: str | tuple, board: BoardProfile | str | None = None) -> Interpreter:
    """The interpreter firmware `version` links on `board` (default openmv_h7)."""
    profile = load_board(board or DEFAULT_BOARD) if not isinstance(board, BoardProfile) else board
    v = parse_version(version) if isinstance(version, str) else tuple(version)
    for entry in interpreters(profile):
        low, _, high = entry.firmware.partition("-")
        if parse_version(low) <= v <= parse_version(high or low):
            return entry
    raise UserError(f"firmware {'.'.join(map(str, v))}: no interpreter listed for it in boards/{profile.name}.json")


def default_interpreter(board: BoardProfile) -> Interpreter:
    return interpreter_for(board["firmware"]["default_version"], board)
