"""Cost of each model design, as numbers: MACs, estimated H7 time, and measured TFLM time on this host.

The board estimate comes from MACs alone (host.boards); the host column times the real TFLM
interpreter (reference kernels, x86), which is no stand-in for the Cortex-M7 but shows whether the
MAC ranking holds when memory traffic and per-op overhead are counted. Untrained weights: the time
does not depend on them. Also times the degraded-test-set preparation.

    .venv/bin/python benchmarks/bench_compare.py [--runs 200] [--archs ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from host import tflm  # noqa: E402
from host.boards import load_board  # noqa: E402
from host.errors import positive_int, run_script  # noqa: E402
from host.make import degrade, prune, quantize  # noqa: E402
from host.make import model as model_mod  # noqa: E402


def time_tflm(payload: bytes, pixels: np.ndarray, runs: int) -> float:
    model = tflm.Int8Model(payload)
    model.scores(pixels[0])  # warm up
    start = time.perf_counter()
    for i in range(runs):
        model.scores(pixels[i % len(pixels)])
    return 1000.0 * (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=positive_int, default=200)
    parser.add_argument("--archs", nargs="+", default=list(model_mod.ARCHITECTURES))
    parser.add_argument("--prune-rates", nargs="*", type=float, default=[0.25, 0.5, 0.75])
    args = parser.parse_args()
    board = load_board("openmv_h7")
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    models = {arch: model_mod.build(arch) for arch in args.archs}
    reference = model_mod.tiny_cnn()
    for rate in args.prune_rates:
        models[f"tiny_cnn_pruned{round(rate * 100)}"] = prune.prune_by_rate(reference, rate)
    print(f"{'model':24}{'params':>9}{'int8 B':>9}{'MACs':>11}{'H7 est ms':>11}{'host TFLM ms':>14}")
    for name, model in models.items():
        payload = quantize.quantize(model, pixels)
        macs = model_mod.count_macs(model)
        host_ms = time_tflm(payload, pixels, args.runs)
        print(f"{name:24}{model.count_params():>9,}{len(payload):>9,}{macs:>11,}{board.inference_ms(macs):>11.2f}{host_ms:>14.2f}")
    windows = np.stack([np.asarray(np.random.default_rng(i).integers(0, 256, (200, 200, 3)), np.uint8) for i in range(50)])
    for name in degrade.DEGRADATIONS:
        start = time.perf_counter()
        degrade.degraded_pixels(windows, name)
        print(f"degrade {name:14} {1000 * (time.perf_counter() - start) / len(windows):6.2f} ms per window")


if __name__ == "__main__":
    sys.exit(run_script(main))
