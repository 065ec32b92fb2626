"""Benchmark the default build: wall time of `python -m host.build` and the figures it reaches.

    python benchmarks/bench_build.py [--models-dir /tmp/bench-models] [extra host.build args]

Prints the build's own summary, then one line per target of the host-build issue with its
measured value, so a note can quote them. Never asserts: machines are noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from host import tflm
from host.errors import UserError, run_script


def main() -> int:
    args = sys.argv[1:]
    given = [a for a in args if a == "--models-dir" or a.startswith("--models-dir=")]
    if given and given[0] == "--models-dir":
        at = args.index("--models-dir")
        if at + 1 >= len(args) or args[at + 1].startswith("-"):
            raise UserError("--models-dir: name the folder the bundle goes to, e.g. --models-dir /tmp/bench-models")
        models = Path(args[at + 1])
    elif given:
        models = Path(given[0].split("=", 1)[1])
    else:
        models = Path(tempfile.mkdtemp(prefix="bench-models-"))
        args = ["--models-dir", str(models), *args]
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "host.build", *args], check=False)
    seconds = time.time() - start
    if result.returncode:
        print(f"build failed with exit code {result.returncode}")
        return result.returncode
    bundle = models / "tinymask"
    card = json.loads((bundle / "model_card.json").read_text())
    model = tflm.Int8Model(bundle / card["model_file"])
    frames = np.random.default_rng(0).integers(0, 256, size=(200, 32, 32, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    model.scores(frames)
    host_ms = (time.perf_counter() - t0) * 1000 / len(frames)
    m = card["metrics"]
    print("\n== targets (host-build issue)")
    print(f"int8 test accuracy        {m['int8']['accuracy'] * 100:.2f} %   (target >= 99.0 %)")
    print(f"float32 test accuracy     {m['float32']['accuracy'] * 100:.2f} %")
    print(f"int8/float32 agreement    {m['agreement'] * 100:.2f} %   (target >= 99.5 %)")
    print(f"int8 model bytes          {card['model_bytes']:,}   (target <= 141,312)")
    print(f"tensor arena bytes        {card['arena_bytes']:,}   (target < 32,768)")
    print(f"est. H7 inference         {card['estimate']['inference_ms']} ms, {card['estimate']['fps']} FPS whole loop")
    print(f"build wall time           {seconds:.0f} s   (target < 600 s)")
    print(f"TFLM on this host         {host_ms:.2f} ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
