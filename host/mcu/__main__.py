"""`python -m host.mcu run|compare|info|build`: the board's own libtflm on an emulated Cortex-M7.

  run MODEL.tflite --inputs FILE|DIR ...   raw int8 outputs, instruction counts, estimated H7 ms
  compare MODEL.tflite [--data DIR]        raw outputs vs the board TFLM wheel and the host TFLM
  info                                     the harness, the library it links, the calibration
  build [LIBTFLM_CHECKOUT]                 rebuild host/mcu/elf/ with mcu/build.sh
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from host import preprocess
from host.errors import UserError, run_cli
from host.make.bundle import is_tflite
from host.mcu import latency, models, runner

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
TOOLCHAIN_HINT = "arm-none-eabi-gcc not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"


def image_side(input_bytes: int) -> int:
    """The side S of an SxSx3 input of `input_bytes` (what images are decoded at), else 32."""
    side = math.isqrt(input_bytes // 3)
    return side if side * side * 3 == input_bytes else preprocess.INPUT_SIZE


def load_inputs(paths: list[str], input_bytes: int, limit: int | None = None) -> np.ndarray:
    """int8 rows from .npy files (int8 as is; uint8 as board pixels, fed as pixel - 128), .bin raw
    int8 files, images (board preprocessing, host.preprocess.board_pixels, at the model's square
    input) or folders of images."""
    side = image_side(input_bytes)
    rows = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise UserError(f"{path}: no images in it")
        elif path.is_file():
            files = [path]
        else:
            raise UserError(f"{path}: no such file or folder")
        for f in files:
            if f.suffix == ".npy":
                try:
                    a = np.load(f, allow_pickle=False)  # never unpickle a file: it could run code
                except (ValueError, OSError) as exc:
                    raise UserError(f"{f}: not a plain .npy array ({str(exc).splitlines()[0][:80]}); give int8 tensors"
                                    " or uint8 pixels") from None
                if a.dtype == np.uint8:
                    a = preprocess.to_int8_input(a)
                elif a.dtype != np.int8:
                    raise UserError(f"{f}: dtype {a.dtype}; give int8 tensors or uint8 pixels")
                rows.extend(a.reshape(-1, input_bytes) if a.size % input_bytes == 0 else _bad(f, a.size, input_bytes))
            elif f.suffix == ".bin":
                b = np.frombuffer(f.read_bytes(), np.int8)
                rows.extend(b.reshape(-1, input_bytes) if b.size % input_bytes == 0 else _bad(f, b.size, input_bytes))
            elif f.suffix.lower() in IMAGE_SUFFIXES:
                from host.make import data

                try:
                    pixels = preprocess.board_pixels(data.load_image(f), side)
                except ValueError as exc:
                    raise UserError(f"{f}: {exc}") from None
                x = preprocess.to_int8_input(pixels).reshape(-1)
                if x.size != input_bytes:
                    raise UserError(f"{f}: an image gives {x.size} input bytes ({side}x{side}x3); the model wants {input_bytes}")
                rows.append(x)
            else:
                raise UserError(f"{f}: give .npy, .bin or image files")
            if limit and len(rows) >= limit:
                break
    if not rows:
        raise UserError("no inputs")
    out = np.stack(rows[:limit] if limit else rows).astype(np.int8)
    return out


def _bad(path: Path, size: int, want: int):
    raise UserError(f"{path}: {size} values is not a multiple of the model's {want} input bytes")


def _ops_table(result: runner.McuResult) -> list[str]:
    total = result.instructions
    lines = [f"{'#':>3}  {'op':<20}{'layer':<28}{'instructions':>14}{'share':>8}{'est. ms':>9}"]
    for o in result.ops:
        lines.append(f"{o.index:>3}  {o.op:<20}{o.name[:27]:<28}{o.instructions:>14,}{100 * o.instructions / total:>7.1f}%"
                     f"{latency.estimate_ms(o.instructions):>9.2f}")
    lines.append(f"{'':>3}  {'(interpreter)':<20}{'':<28}{result.overhead_instructions:>14,}"
                 f"{100 * result.overhead_instructions / total:>7.1f}%{latency.estimate_ms(result.overhead_instructions):>9.2f}")
    lines.append(f"{'':>3}  {'Invoke() total':<48}{total:>14,}{'':>8}{latency.estimate_ms(total):>9.2f}")
    return lines


def _read_model(path: str) -> bytes:
    if not Path(path).is_file():
        raise UserError(f"{path}: no such model file")
    payload = Path(path).read_bytes()
    if not is_tflite(payload):
        raise UserError(f"{path}: not a .tflite model (no TFL3 identifier); give a model host.build wrote")
    return payload


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: at least 1 input (leave it out for all)")


def cmd_run(args) -> int:
    check_limit(args.limit)
    payload = _read_model(args.model)
    info = runner.probe(payload)
    x = load_inputs(args.inputs, info.input_bytes, args.limit)
    result = runner.run(payload, x, count=0 if args.no_count else min(args.count, len(x)))
    mac_ms = 1000 * models.macs(payload) / 0.4 / latency.H7_CLOCK_HZ
    if args.json:
        print(json.dumps({
            "model": args.model, "outputs": result.raw.tolist(), "arena_used": result.arena_used,
            "invoke_instructions": result.invoke_instructions,
            "ops": [o.__dict__ for o in result.ops], "overhead_instructions": result.overhead_instructions if result.ops else None,
            "estimated_ms": latency.estimate_ms(result.instructions) if result.instructions else None,
            "mac_estimated_ms": mac_ms, "emulation_seconds": result.emulation_seconds,
            "counted_seconds": result.counted_seconds}))
        return 0
    for i, row in enumerate(result.raw):
        print(f"input {i}: raw int8 output {' '.join(str(int(v)) for v in row)}")
    if result.instructions:
        print(f"instructions per Invoke(): {result.instructions:,} (first input; "
              f"{', '.join(f'{n:,}' for n in result.invoke_instructions)} for the {len(result.invoke_instructions)} counted)")
        print(f"estimated H7 inference: {latency.estimate_ms(result.instructions):.1f} ms "
              f"({latency.CYCLES_PER_INSTRUCTION:.3f} cycles/instruction at 480 MHz); MAC estimate {mac_ms:.1f} ms (0.4 MAC/cycle)")
        if args.ops:
            print("\n".join(_ops_table(result)))
    n = len(result.raw)
    print(f"emulation: {result.emulation_seconds:.2f} s for {n} input(s), {result.emulation_seconds / n:.3f} s each"
          + (f"; counting {result.counted_seconds / max(1, len(result.invoke_instructions)):.2f} s per input" if result.instructions else "")
          + f"; arena used {result.arena_used:,} B")
    return 0


def cmd_compare(args) -> int:
    from host.mcu import exact

    check_limit(args.limit)
    payload = _read_model(args.model)
    pixels = models.test_pixels(Path(args.data), args.limit, image_side(runner.probe(payload).input_bytes))
    report = exact.compare(payload, preprocess.to_int8_input(pixels))
    print("\n".join(report.lines()))
    return 0 if report.all_identical else 1


def cmd_info(args) -> int:
    manifest = runner.manifest()
    print(f"harness: {manifest['source']} at {manifest['commit']} (tflite-micro {manifest['tflite_micro_commit'][:9]})")
    for variant, v in manifest["variants"].items():
        print(f"  {variant}: {v['library']} sha256 {v['library_sha256']} ({v['library_bytes']:,} B)"
              f" -> host/mcu/elf/{v['elf']} sha256 {v['elf_sha256'][:16]}")
    print(f"  built with {manifest['compiler']}: {manifest['flags']}")
    print(f"calibration: {latency.CYCLES_PER_INSTRUCTION:.3f} cycles per instruction")
    for row in latency.calibration_rows():
        print(f"  {row['name']}: measured {row['measured_ms']} ms at {row['clock_mhz']:.0f} MHz, {row['instructions']:,}"
              f" instructions ({row['cpi']} cycles/instr), predicted {row['predicted_ms']} ms ({row['error_pct']:+.1f}%),"
              f" {row['kind']}; {row['source']}")
    return 0


def cmd_build(args) -> int:
    if shutil.which("arm-none-eabi-gcc") is None:
        raise UserError(TOOLCHAIN_HINT)
    script = models.REPO / "mcu" / "build.sh"
    child = subprocess.run(["bash", str(script)] + ([args.libtflm] if args.libtflm else []), check=False)
    return child.returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.mcu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a .tflite on the emulated board")
    p.add_argument("model")
    p.add_argument("--inputs", nargs="+", required=True, help=".npy (int8, or uint8 pixels), .bin, images or folders")
    p.add_argument("--limit", type=int, default=None, help="at most this many inputs")
    p.add_argument("--count", type=int, default=1, help="inputs to count instructions on (about 0.5 s each)")
    p.add_argument("--no-count", action="store_true", help="outputs only")
    p.add_argument("--ops", action="store_true", help="per-op instruction table")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("compare", help="raw outputs vs the board TFLM wheel and the host TFLM on test images")
    p.add_argument("model")
    p.add_argument("--data", default=str(_default_data()))
    p.add_argument("--limit", type=int, default=300)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("info", help="the harness, its library and the calibration")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("build", help="rebuild host/mcu/elf from openmv/libtflm (mcu/build.sh)")
    p.add_argument("libtflm", nargs="?", help="a libtflm git checkout (default: clone github.com/openmv/libtflm)")
    p.set_defaults(func=cmd_build)
    args = parser.parse_args(argv)
    return args.func(args)


def _default_data() -> Path:
    import os

    from host.make import data

    return Path(os.environ.get("TINYMASK_DATA", data.DEFAULT_DATA))


if __name__ == "__main__":
    sys.exit(run_cli(main))
