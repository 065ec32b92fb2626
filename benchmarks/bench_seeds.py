"""How much of a build's accuracy is the recipe and how much is luck: the default build at several seeds.

    python benchmarks/bench_seeds.py [--seeds 1337 7 42] [extra host.build args]

The seed moves the validation split, the initial weights and the batch order; the test split stays.
Prints one line per seed (int8 accuracy on TFLM, errors, int8/float32 agreement) and then the mean,
the spread and the 95% Wilson interval of the pooled test predictions. About 4 minutes per seed on
2 cores. Never asserts: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host.compare import wilson_interval


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 7, 42])
    args, build_args = parser.parse_known_args()
    work = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
    rows = []
    for seed in args.seeds:
        models = work / str(seed)
        start = time.time()
        command = [sys.executable, "-m", "host.build", "--seed", str(seed), "--models-dir", str(models), "--quiet", *build_args]
        if subprocess.run(command, check=False).returncode:
            print(f"seed {seed}: build failed")
            return 1
        card = json.loads((models / "tinymask" / "model_card.json").read_text())
        int8 = card["metrics"]["int8"]
        errors = int8["count"] - round(int8["accuracy"] * int8["count"])
        rows.append((seed, int8["accuracy"], errors, int8["count"], card["metrics"]["agreement"]))
        print(f"seed {seed:>6}: int8 {int8['accuracy'] * 100:6.2f} %  ({errors} errors of {int8['count']}), "
              f"agreement {card['metrics']['agreement'] * 100:6.2f} %, {time.time() - start:.0f} s", flush=True)
    accuracies = [r[1] * 100 for r in rows]
    correct = sum(r[3] - r[2] for r in rows)
    total = sum(r[3] for r in rows)
    low, high = wilson_interval(correct, total)
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"\nint8 accuracy over {len(rows)} seeds: mean {statistics.mean(accuracies):.2f} %, "
          f"sd {spread:.2f}, min {min(accuracies):.2f}, max {max(accuracies):.2f}; "
          f"pooled 95% interval {low * 100:.2f}-{high * 100:.2f} % ({correct} of {total})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
