"""How fast host evaluation runs while staying board-exact (issue 10, target >= 5,000 images/s).

    python benchmarks/bench_eval.py [--bundle models/tinymask] [--repeats 5]

On the facemask-v1 test split (599 images, repeated --repeats times) it times, in images per
second: the board's own TFLM (the firmware's tflite-micro wheel in its worker process), the host
TFLM interpreter one image at a time, and the fastest LiteRT interpreter `host.tflm.board_exact`
verified identical to the board's TFLM for this model (what build, compare and the simulator's
batch paths use). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import preprocess, tflm  # noqa: E402
from host.errors import positive_int, run_script  # noqa: E402
from host.make import data as data_mod  # noqa: E402


def rate(run, inputs: np.ndarray) -> float:
    run(inputs[:8])  # warm up
    start = time.perf_counter()
    run(inputs)
    return len(inputs) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "tinymask")
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    card = json.loads((args.bundle / "model_card.json").read_text())
    payload = (args.bundle / card["model_file"]).read_bytes()
    split, _ = data_mod.load_test_split(data_mod.default_data_dir(), progress=False)
    exact = tflm.board_exact(payload, split.pixels)
    print(exact.verification.line())
    inputs = np.concatenate([preprocess.to_int8_input(split.pixels)] * args.repeats)
    host = tflm.Int8Model(payload)
    rows = [
        (f"board TFLM ({exact.board.label}, worker process)", rate(exact.board.raw, inputs)),
        ("host TFLM, one image at a time", rate(lambda x: [host.raw(i) for i in x], inputs)),
        (f"board-exact fast path ({exact.verification.used})", rate(exact.raw, inputs)),
    ]
    for name, value in rows:
        print(f"{value:10,.0f} images/s  {name}")
    print(f"target: >= 5,000 images/s on the board-exact path ({len(inputs):,} images)")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
