"""The board's own libtflm on the emulated Cortex-M7: bit-exactness, instruction counts, latency.

    python benchmarks/bench_mcu.py [--limit 300] [--archs reference tiny_cnn ...] [--json out.json]

For the reference bundle (models/tinymask/tinymask.tflite) and every design host.compare offers
(host.make.model.ARCHITECTURES, untrained, int8-calibrated on the first 100 test images):
1. raw int8 outputs on `--limit` test images (facemask-v1 test split, board preprocessing):
   emulated board kernels vs the board-TFLM wheel (tflite-micro a57349f) and the host TFLM, x/N;
2. instructions per Invoke() and per op (first image), the calibrated H7 ms and the MAC estimate;
3. the calibration networks recounted (host.mcu.latency.CALIBRATION), and their errors;
4. seconds per emulated inference, uncounted and counted.
Prints numbers; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("UC_IGNORE_REG_BREAK", "1")

from host import preprocess  # noqa: E402
from host.errors import UserError, positive_int, run_script  # noqa: E402
from host.make import data  # noqa: E402
from host.mcu import exact, latency, models, runner  # noqa: E402


def main() -> int:
    from host.make import model as model_mod

    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=positive_int, default=300)
    parser.add_argument("--archs", nargs="+",
                        default=["reference"] + list(model_mod.ARCHITECTURES) + ["tiny_cnn_pruned25", "tiny_cnn_pruned50"])
    parser.add_argument("--data", default=os.environ.get("TINYMASK_DATA", str(data.DEFAULT_DATA)))
    parser.add_argument("--json", default=None, help="write every number here")
    parser.add_argument("--no-calibration", action="store_true")
    parser.add_argument("--cut", choices=["final", "wide", "both"], default="both",
                        help="compare the model's output, its widest late int8 tensor (models.wide_cut), or both")
    args = parser.parse_args()

    by_size = {}  # the test images decoded for each input size a design asks for

    def pixels_at(size: int):
        if size not in by_size:
            by_size[size] = models.test_pixels(Path(args.data), args.limit, size)
        return by_size[size]

    pixels = pixels_at(preprocess.INPUT_SIZE)
    print(f"{len(pixels)} test images from {args.data}; harness {runner.manifest()['commit'][:7]}"
          f" ({runner.manifest()['variants']['release']['library_sha256'][:12]}...)")
    rows = []
    for arch in args.archs:
        t0 = time.perf_counter()
        size = model_mod.input_size(arch.partition("_pruned")[0]) if arch != "reference" else preprocess.INPUT_SIZE
        pixels = pixels_at(size)
        x = preprocess.to_int8_input(pixels)
        payload = models.REFERENCE.read_bytes() if arch == "reference" else models.architecture(arch, pixels[:100])
        build_s = time.perf_counter() - t0
        try:
            rep = exact.compare(payload, x) if args.cut != "wide" else None
            wide = None
            if args.cut != "final":
                keep, op, values = models.wide_cut(payload)
                wide = exact.compare(models.truncate(payload, keep), x)
                wide_what = f"output of op #{keep - 1} ({op}, {values} int8 values)"
            counted = runner.run(payload, x[:1], count=1)
        except UserError as exc:
            print(f"\n== {arch}: {exc}")
            rows.append({"model": arch, "error": str(exc)})
            continue
        macs = models.macs(payload)
        main_rep = rep or wide
        row = {
            "model": arch, "int8_bytes": len(payload), "macs": macs, "images": main_rep.total,
            "identical_board_wheel": rep.identical_board_wheel if rep else None,
            "identical_host": rep.identical_host if rep else None,
            "distinct_outputs": rep.distinct_outputs if rep else None, "differing": rep.differing if rep else None,
            "board_wheel": main_rep.board_label,
            "wide_cut": wide_what if wide else None,
            "wide_identical_board_wheel": wide.identical_board_wheel if wide else None,
            "wide_identical_host": wide.identical_host if wide else None,
            "wide_distinct_outputs": wide.distinct_outputs if wide else None,
            "wide_differing": wide.differing if wide else None,
            "instructions": counted.instructions, "overhead_instructions": counted.overhead_instructions,
            "ops": [o.__dict__ for o in counted.ops],
            "calibrated_ms": round(latency.estimate_ms(counted.instructions), 2),
            "mac_ms": round(1000 * macs / 0.4 / latency.H7_CLOCK_HZ, 2),
            "instructions_per_mac": round(counted.instructions / max(1, macs), 3),
            "seconds_per_inference": round(main_rep.mcu_seconds / max(1, main_rep.total), 4),
            "seconds_per_counted_inference": round(counted.counted_seconds, 3),
            "arena_used": counted.arena_used, "build_seconds": round(build_s, 1),
        }
        rows.append(row)
        print(f"\n== {arch}: {len(payload):,} B int8, {macs:,} MACs, arena {counted.arena_used:,} B")
        if rep:
            print("   model output:")
            print("\n".join("     " + line for line in rep.lines()))
        if wide:
            print(f"   {wide_what}:")
            print("\n".join("     " + line for line in wide.lines()))
        print(f"   {counted.instructions:,} instructions per Invoke() ({row['instructions_per_mac']} per MAC):"
              f" {row['calibrated_ms']} ms calibrated vs {row['mac_ms']} ms MAC estimate;"
              f" counted run {row['seconds_per_counted_inference']} s")
        by_op: dict[str, int] = {}
        for o in counted.ops:
            by_op[o.op] = by_op.get(o.op, 0) + o.instructions
        print("   by op: " + ", ".join(f"{k} {v:,} ({100 * v / counted.instructions:.1f}%)"
                                      for k, v in sorted(by_op.items(), key=lambda kv: -kv[1]))
              + f", interpreter {counted.overhead_instructions:,}")
        if arch in ("reference", "door_cnn"):
            for o in counted.ops:
                print(f"     #{o.index:<3}{o.op:<20}{o.name[:30]:<31}{o.instructions:>12,}")

    calibration = []
    if not args.no_calibration:
        print("\n== calibration (host.mcu.latency)")
        for point in latency.CALIBRATION:
            payload = getattr(models, point.name)()
            r = runner.run(payload, __import__("numpy").zeros((1, runner.probe(payload).input_bytes), "int8"), count=1)
            calibration.append({"name": point.name, "instructions": r.instructions, "recorded": point.instructions,
                                "macs": models.macs(payload)})
            print(f"   {point.name}: {r.instructions:,} instructions (recorded {point.instructions:,}), {models.macs(payload):,} MACs")
        for row in latency.calibration_rows():
            if row["kind"] == "bound":
                print(f"   {row['name']}: at most {row['measured_ms']} ms at {row['clock_mhz']:.0f} MHz (published FPS);"
                      f" calibrated {row['predicted_ms']} ms ({'within' if row['within_bound'] else 'OVER'} the bound),"
                      f" MAC estimate {row['mac_estimate_ms']} ms")
                continue
            print(f"   {row['name']}: measured {row['measured_ms']} ms at {row['clock_mhz']:.0f} MHz -> {row['cpi']} cycles/instr;"
                  f" calibrated {row['predicted_ms']} ms ({row['error_pct']:+.1f}%), MAC estimate {row['mac_estimate_ms']} ms"
                  f" ({row['mac_error_pct']:+.1f}%) [{row['kind']}{': ' + row['note'] if row['kind'] != 'fit' else ''}]")
        ref = next((r for r in rows if r["model"] == "reference" and "instructions" in r), None)
        if ref:
            bound = 1000 / latency.PAPER_FPS
            print(f"   reference CNN: calibrated {ref['calibrated_ms']} ms, MAC estimate {ref['mac_ms']} ms; the paper's"
                  f" 30 FPS on the H7 (arXiv 2011.14858, camera included) bounds inference at {bound:.1f} ms:"
                  f" {'consistent' if ref['calibrated_ms'] <= bound else 'INCONSISTENT'}")
    print(f"\nfactor: {latency.CYCLES_PER_INSTRUCTION:.3f} cycles per instruction at 480 MHz")
    print(f"{'model':<16}{'output =wheel':>14}{'=host':>9}{'wide =wheel':>13}{'=host':>9}{'instructions':>14}"
          f"{'calib. ms':>10}{'MAC ms':>8}{'s/inf':>7}")

    def frac(v, n):
        return "-" if v is None else f"{v}/{n}"

    for r in rows:
        if "error" in r:
            print(f"{r['model']:<16} {r['error']}")
            continue
        n = r["images"]
        print(f"{r['model']:<16}{frac(r['identical_board_wheel'], n):>14}{frac(r['identical_host'], n):>9}"
              f"{frac(r['wide_identical_board_wheel'], n):>13}{frac(r['wide_identical_host'], n):>9}"
              f"{r['instructions']:>14,}{r['calibrated_ms']:>10}{r['mac_ms']:>8}{r['seconds_per_inference']:>7}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "calibration": calibration,
                                               "calibration_rows": latency.calibration_rows(),
                                               "cycles_per_instruction": latency.CYCLES_PER_INSTRUCTION}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
