"""Issue 16 screening: would asking the model about more than one view of the window keep the door
shut for pictures with no face?

    python benchmarks/bench_views.py [--bundle models/tinymask]

Each view is a centred (or shifted) square crop of the 200x200 camera window, scaled to the
model's 32x32 with the board's bilinear path (host.preprocess.board_downscale_rgb565), or the
window mirrored. A frame is admitted when every view of a combination scores P(with_mask) at or
above the bundle's door threshold. Prints admitted shares for scenes-negative test (no face) and
facemask-extra test close up and door-framed (40-70% of the window in a scenes-negative test
photo, host.framing), per combination. Not used by the firmware; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_second_opinion import windows  # noqa: E402

from host import preprocess  # noqa: E402
from host.errors import run_script  # noqa: E402
from host.make import data as data_mod  # noqa: E402
from host.make import evaluate  # noqa: E402

VIEWS = {"full": (200, 0), "centre160": (160, 0), "centre120": (120, 0), "right180": (180, 10), "left180": (180, -10),
         "mirror": (200, 0)}
REPO = Path(__file__).resolve().parents[1]
COMBINATIONS = [["full"], ["full", "mirror"], ["full", "centre160"], ["full", "centre160", "centre120"],
                ["full", "right180", "left180"]]


def view_pixels(frames: list[np.ndarray], view: str) -> np.ndarray:
    side, dx = VIEWS[view]
    o = (preprocess.WINDOW - side) // 2
    out = []
    for w in frames:
        crop = np.ascontiguousarray(w[o:o + side, o + dx:o + dx + side])
        px = preprocess.window_pixels(crop)
        out.append(px[:, ::-1] if view == "mirror" else px)
    return np.stack(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "tinymask")
    parser.add_argument("--data", type=Path, default=data_mod.SHARED_DATASETS)
    args = parser.parse_args(argv)
    card = json.loads((args.bundle / "model_card.json").read_text())
    payload = (args.bundle / card["model_file"]).read_bytes()
    threshold = card["door_threshold"]
    found = windows(args.data, ("test",), ("facemask-extra",))
    print(f"{args.bundle}: door threshold {threshold:.4f}")
    sets = [(title, *found[name]) for title, name in (("scenes-negative test, no face", "no face, test"),
                                                      ("facemask-extra test, close up", "facemask-extra close up"),
                                                      ("facemask-extra test, door-framed", "facemask-extra door-framed"))]
    for name, frames, labels in sets:
        admitted = {v: evaluate.positive_scores(evaluate.int8_outputs(payload, view_pixels(frames, v), False)) >= threshold
                    for v in VIEWS}
        for combo in COMBINATIONS:
            both = np.logical_and.reduce([admitted[v] for v in combo])
            if labels is None:
                shares = f"admitted {both.mean():.2%} of {len(both)}"
            else:
                shares = "  ".join(f"{label} admitted {both[labels == i].mean():.2%}"
                                   for i, label in enumerate(data_mod.LABELS))
            print(f"{name:34} {' + '.join(combo):32} {shares}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
