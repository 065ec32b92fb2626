"""Board budget checks for an int8 model (`python -m host.checks MODEL --board openmv_h7`).

A model that fails any check is refused: the build stops with the failing lines and a non-zero exit,
and nothing is written to models/. The checks:
- size: the .tflite must fit the board profile's model budget;
- input: int8 [1, S, S, 3] with S from 16 to 64 (32 for every design but issue 13's 48x48 candidate;
  `ml.Model.predict` / `net.classify` draw the camera window into whatever square the model
  declares), scale 1/255, zero point -128 (the board feeds `pixel - 128`);
- ops: every operator must be in the board profile's supported list;
- arena: the tensor arena TFLM actually needs must fit the profile's arena budget;
- board interpreter: the firmware's own TFLM (the profile's default firmware, boards/*.json
  `interpreters`) must load the model: no op its resolver lacks, no per-channel dense layer (refused
  by tflite-micro 7a02496/a57349f), and it must allocate and invoke in that very TFLM build
  (host/interp). Without CPython 3.10/3.11 for that build the static rules alone decide, and the
  check says so; with them but without `.board-tflm/`, it stops with the command that creates it.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from host import tflm
from host.boards import BoardProfile, load_board
from host.errors import UserError, run_cli
from host.interp import board as board_interp
from host.interp import firmware
from host.make import memfit

# The square inputs a bundle may declare: the board scales the window to any size, the host's door
# framing samples faces from 64 px window copies (host.make.augment.WINDOW_COPY), and below 16 px a
# face a step from the door is a few pixels across.
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 64
EXPECTED_SCALE = 1.0 / 255.0
EXPECTED_ZERO_POINT = -128


@dataclass
class ModelFacts:
    model_bytes: int
    input: dict
    output: dict
    ops: list[str]
    arena_bytes: int
    board_interpreter: str = ""  # the firmware's TFLM the model was loaded in
    board_mode: str = ""  # "tflm" (loaded and invoked in that build) or "static" (rules only)
    board_refusals: list[str] = field(default_factory=list)  # one line per refused layer, with the fix


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _tensor_facts(details: dict) -> dict:
    q = details.get("quantization_parameters", {})
    scales, zero_points = q.get("scales", []), q.get("zero_points", [])
    return {
        "shape": [int(v) for v in details["shape"]],
        "dtype": np.dtype(details["dtype"]).name,
        "scale": float(scales[0]) if len(scales) else 0.0,
        "zero_point": int(zero_points[0]) if len(zero_points) else 0,
    }


def square_side(shape) -> int | None:
    """S of an input shape [1, S, S, 3] with MIN_INPUT_SIZE <= S <= MAX_INPUT_SIZE, else None."""
    shape = [int(v) for v in shape]
    if len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and shape[1] == shape[2]:
        if MIN_INPUT_SIZE <= shape[1] <= MAX_INPUT_SIZE:
            return shape[1]
    return None


INPUT_RULE = (f"the board feeds pixel-128 into a square input, so it must be int8 [1,S,S,3] with S from"
              f" {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE}, scale 1/255 zero point -128")


def input_size(payload: bytes, where: str | Path = "the model") -> int:
    """The side of a bundle's square input, read from its .tflite input tensor: the size every
    picture is decoded at to measure it (calibrate, evaluate, the publish gate, the field report).
    One UserError line, naming `where`, for an input the board cannot be fed."""
    from host.interp import flatbuf

    try:
        shape = flatbuf.input_shape(payload)
    except UserError as exc:  # not a .tflite at all
        raise UserError(f"{where}: {exc}") from None
    side = square_side(shape)
    if side is None:
        raise UserError(f"{where}: input {shape}: {INPUT_RULE}; rebuild it with python -m host.build --arch ARCH"
                        " (a design's input: host.make.model.input_size)")
    return side


def board_load(payload: bytes, board: BoardProfile | None = None) -> tuple[str, str, list[str]]:
    """Load and invoke the model once in the TFLM of the board's default firmware:
    (interpreter label, mode, refusal lines). A missing .board-tflm raises its one-line fix."""
    interpreter = firmware.default_interpreter(board or load_board(firmware.DEFAULT_BOARD))
    try:
        loaded = board_interp.load(payload, interpreter)
        loaded.raw(np.zeros(loaded.input["shape"], np.dtype(loaded.input["dtype"])))
        loaded.close()
    except board_interp.BoardRefusal as exc:
        return interpreter.label, board_interp.run_mode(), [r.line() for r in exc.refusals]
    except RuntimeError as exc:  # invoke failed in the board's TFLM
        return interpreter.label, loaded.mode, [f"invoke failed in {interpreter.label}: {exc}"]
    return loaded.label, loaded.mode, []


def inspect_model(payload: bytes, board: BoardProfile | None = None) -> ModelFacts:
    """Sizes, input/output quantization, operator list (LiteRT), arena bytes (TFLM) and the load in
    the board's own TFLM (`board_load`)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=payload)
    except ValueError as exc:
        raise UserError(f"not a valid .tflite model ({exc}); rebuild it with python -m host.build") from None
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    label, mode, refusals = board_load(payload, board)
    if mode == "tflm" and not refusals:  # the arena the board's own TFLM build needs
        arena = board_interp.arena_bytes(payload, firmware.default_interpreter(board or load_board(firmware.DEFAULT_BOARD)))
    else:
        arena = tflm.arena_bytes(payload)
    return ModelFacts(
        model_bytes=len(payload),
        input=_tensor_facts(interpreter.get_input_details()[0]),
        output=_tensor_facts(interpreter.get_output_details()[0]),
        ops=ops,
        arena_bytes=arena,
        board_interpreter=label,
        board_mode=mode,
        board_refusals=refusals,
    )


def run_checks(facts: ModelFacts, board: BoardProfile) -> list[Check]:
    inp = facts.input
    input_ok = (
        inp["dtype"] == "int8"
        and square_side(inp["shape"]) is not None
        and abs(inp["scale"] - EXPECTED_SCALE) < 1e-6
        and inp["zero_point"] == EXPECTED_ZERO_POINT
    )
    unsupported = [op for op in facts.ops if op not in board.supported_ops]
    return [
        Check(
            "model size", facts.model_bytes <= board.model_budget_bytes,
            f"{facts.model_bytes:,} bytes (budget {board.model_budget_bytes:,} on {board.name})"
            + ("" if facts.model_bytes <= board.model_budget_bytes else "; use a smaller model (--arch) or a board with more RAM"),
        ),
        Check(
            "input quantization", input_ok,
            f"{inp['dtype']} {inp['shape']} scale {inp['scale']:.8f} zero point {inp['zero_point']}"
            + ("" if input_ok else f"; {INPUT_RULE}: train a design of such an input (host.make.model.input_size) on"
               " x/255 and quantize with representative data spanning 0..255"),
        ),
        Check(
            "operators", not unsupported,
            ", ".join(facts.ops) if not unsupported
            else f"{', '.join(unsupported)} not supported by {board.name}; replace those layers",
        ),
        Check(
            "tensor arena", facts.arena_bytes <= board.arena_budget_bytes,
            f"{facts.arena_bytes:,} bytes (budget {board.arena_budget_bytes:,})"
            + ("" if facts.arena_bytes <= board.arena_budget_bytes else "; reduce the early feature maps (fewer filters or a stride)"),
        ),
        Check(*memfit.heap_check(facts.model_bytes, facts.arena_bytes, board)),  # one heap block holds all
        Check(
            "board interpreter", not facts.board_refusals,
            "; ".join(facts.board_refusals) if facts.board_refusals
            else (f"allocates and invokes in {facts.board_interpreter}" if facts.board_mode == "tflm"
                  else f"static rules pass; {facts.board_interpreter}"),
        ),
    ]


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


def refuse_if_failed(checks: list[Check], model_name: str) -> None:
    bad = failures(checks)
    if bad:
        lines = "; ".join(f"{c.name}: {c.detail}" for c in bad)
        raise UserError(f"{model_name} refused: {lines}")


def format_checks(checks: list[Check]) -> str:
    return "\n".join(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in checks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help=".tflite file to check")
    parser.add_argument("--board", default="openmv_h7", help="board profile in boards/ (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the facts and checks as JSON")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        raise UserError(f"{args.model}: no such model file")
    board = load_board(args.board)
    try:
        facts = inspect_model(args.model.read_bytes(), board)
    except UserError as exc:
        raise UserError(f"{args.model}: {exc}") from None
    checks = run_checks(facts, board)
    if args.json:
        import json

        print(json.dumps({"facts": asdict(facts), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(format_checks(checks))
    refuse_if_failed(checks, str(args.model))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
