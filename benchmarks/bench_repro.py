"""Same seed, same bundle? And what TensorFlow's deterministic kernels cost.

    python benchmarks/bench_repro.py [--repeats 2] [extra host.build args, default --epochs 10 --limit 100]

Builds the same seed `--repeats` times with deterministic kernels (host.build's default) and as many
times with `--no-determinism`, alternating, and prints for each build the wall time, the CPU time of
the build process (less disturbed than wall time by other work on the machine), the training time
from the card and the sha256 of the .tflite; then whether the sha256s agree. Never asserts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host.errors import positive_int, run_script

DEFAULT_BUILD = ["--epochs", "10", "--limit", "100"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeats", type=positive_int, default=2)
    args, build_args = parser.parse_known_args()
    build_args = build_args or DEFAULT_BUILD
    work = Path(tempfile.mkdtemp(prefix="bench-repro-"))
    rows = []
    for repeat in range(args.repeats):
        for mode, extra in (("deterministic", []), ("default kernels", ["--no-determinism"])):
            out = work / f"{mode.split()[0]}-{repeat}"
            wall, cpu = time.time(), cpu_seconds()
            command = [sys.executable, "-m", "host.build", "--out", str(out), "--quiet", *extra, *build_args]
            if subprocess.run(command, capture_output=True, check=False).returncode:
                print(f"{mode} build {repeat + 1} failed: {' '.join(command)}")
                return 1
            wall, cpu = time.time() - wall, cpu_seconds() - cpu
            card = json.loads((out / "tinymask" / "model_card.json").read_text())
            sha = hashlib.sha256((out / "tinymask" / "tinymask.tflite").read_bytes()).hexdigest()
            rows.append((mode, wall, cpu, card["training"]["seconds"], sha, card["metrics"]["int8"]["accuracy"]))
            print(f"{mode:16} wall {wall:6.1f} s  cpu {cpu:6.1f} s  training {card['training']['seconds']:6.1f} s"
                  f"  int8 {rows[-1][5]:.4f}  sha256 {sha[:16]}", flush=True)
    for mode in ("deterministic", "default kernels"):
        mine = [r for r in rows if r[0] == mode]
        print(f"{mode:16} mean cpu {statistics.mean(r[2] for r in mine):6.1f} s, mean training"
              f" {statistics.mean(r[3] for r in mine):6.1f} s, distinct sha256: {len({r[4] for r in mine})}")
    print(f"all builds byte-identical: {len({r[4] for r in rows}) == 1}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
