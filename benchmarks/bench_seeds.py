"""How much of a build's accuracy is the recipe and how much is luck: the default build at several seeds.

    python benchmarks/bench_seeds.py [--seeds 1337 7 42] [extra host.build args]

The seed moves the validation split, the initial weights and the batch order; the test split stays.
Prints one line per seed (int8 accuracy on TFLM with its 95% Wilson interval, errors, int8/float32
agreement) and then the mean and spread over the seeds (the seeds share one test split, so their
predictions are not pooled into one interval). About 4-5 minutes per seed on 2 cores. Never asserts:
it is a measurement.
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

from host.errors import run_script
from host.make.evaluate import wilson_interval


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 7, 42])
    args, build_args = parser.parse_known_args()
    for owned in ("--seed", "--name", "--models-dir"):
        if any(a == owned or a.startswith(owned + "=") for a in build_args):
            parser.error(f"{owned} is set by this script; use --seeds")
    work = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
    rows = []
    for seed in args.seeds:
        models = work / str(seed)
        start = time.time()
        command = [sys.executable, "-m", "host.build", "--seed", str(seed), "--models-dir", str(models), "--quiet", *build_args]
        if subprocess.run(command, check=False).returncode:
            print(f"seed {seed}: build failed")
            summary(rows)
            return 1
        card = json.loads((models / "tinymask" / "model_card.json").read_text())
        int8 = card["metrics"]["int8"]
        errors = int8["count"] - round(int8["accuracy"] * int8["count"])
        rows.append(int8["accuracy"] * 100)
        low, high = wilson_interval(int8["count"] - errors, int8["count"])
        print(f"seed {seed:>6}: int8 {int8['accuracy'] * 100:6.2f} % (95% {low * 100:.2f}-{high * 100:.2f}), "
              f"{errors} errors of {int8['count']}, agreement {card['metrics']['agreement'] * 100:6.2f} %, "
              f"{time.time() - start:.0f} s", flush=True)
    summary(rows)
    return 0


def summary(accuracies: list[float]) -> None:
    if not accuracies:
        return
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"\nint8 accuracy over {len(accuracies)} seed(s): mean {statistics.mean(accuracies):.2f} %, "
          f"sd {spread:.2f}, min {min(accuracies):.2f}, max {max(accuracies):.2f}")


if __name__ == "__main__":
    sys.exit(run_script(main))
