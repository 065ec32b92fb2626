"""Issue 16 option (a): does OpenMV's built-in Haar face detector find masked faces at a door?

    python benchmarks/bench_haar.py FRONTALFACE [--limit N] [--fractions 0.4 0.55 0.7]
        [--threshold 0.75] [--scale-factor 1.25] [--stages 25]

FRONTALFACE is OpenMV's frontalface cascade, not committed here, in any form host.haar reads.
The v4.8.1 source the H7's ROMFS is built from (boards/OPENMV4/romfs.json; the examples load it as
`image.HaarCascade("/rom/haarcascade_frontalface.cascade", stages=25)`):
    git -C <openmv> show v4.8.1:lib/haar/haarcascade_frontalface.xml > frontalface.xml
or the header v4.5.5/v4.6.0 compile in as `image.HaarCascade("frontalface", stages=25)`, the same
data (tests/test_haar.py checks it):
    git -C <openmv> show v4.6.0:src/omv/imlib/cascade.h > frontalface.h

The windows are bench_face_detector.py's, identical at the same --seed: each test face of
facemask-v1 and facemask-extra as the close-up the classifier is trained on (the whole 200x200
window) and pasted into a real scene of scenes-negative's test split at 40-70% of the window
(`host.framing.door_frame`); the scenes alone give the false detection rate. The detector is
`host.haar.detect`, OpenMV's imlib_detect_objects integer for integer on the RGB565 window, with
the example's settings (threshold=0.75, scale_factor=1.25, all 25 stages; find_features' own
defaults are 0.5 and 1.5). A face counts as detected when find_features returns any rectangle,
as the FOMO benchmark counts any cell; for door framing a second count asks for a rectangle
centred on the pasted face. The cost is the work the C does, counted; no sourced cycle figure
for this code on the H7 exists, so the milliseconds are left unmeasured. Prints numbers; asserts
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_face_detector import DATA, open_rgb, rate  # noqa: E402

from host import haar, preprocess  # noqa: E402
from host.errors import UserError, positive_int, run_script  # noqa: E402
from host.framing import door_frame, manifest_paths, real_test_scenes  # noqa: E402

WORK_FIELDS = ("scored", "stages", "features", "rectangles", "integral_pixels")


class Detector:
    def __init__(self, cascade: haar.Cascade, threshold: float, scale_factor: float):
        self.cascade, self.threshold, self.scale_factor = cascade, threshold, scale_factor
        self.work: dict[str, list[haar.Work]] = {}

    def rects(self, window_rgb565: np.ndarray, kind: str) -> list[haar.Rect]:
        """find_features on the window; its work is kept under `kind`."""
        work = haar.Work()
        found = haar.detect(window_rgb565, self.cascade, self.threshold, self.scale_factor, work)
        self.work.setdefault(kind, []).append(work)
        return found


def face_box(window: np.ndarray, scene) -> haar.Rect | None:
    """Where door_frame pasted the face: the bounding box of the pixels that differ from the bare
    scene (door_frame draws the scene as camera_window_rgb565 does)."""
    ys, xs = np.nonzero(window != preprocess.camera_window_rgb565(scene))
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def centred_on(rects: list[haar.Rect], box: haar.Rect | None) -> bool:
    """Any rectangle whose centre lies inside the box."""
    return box is not None and any(
        box[0] <= x + w / 2 < box[0] + box[2] and box[1] <= y + h / 2 < box[1] + box[3] for x, y, w, h in rects)


def print_table(title: str, rows, keys: list[str]) -> None:
    print(f"\n{title}")
    print(f"{'set':<15} {'label':<13} " + " ".join(f"{k:>22}" for k in keys) + f" {'door framing, all':>22}")
    for set_name, label, hits in rows:
        door = [h for key, value in hits.items() if key != "close-up" for h in value]
        print(f"{set_name:<15} {label:<13} " + " ".join(f"{rate(hits[k]):>22}" for k in keys) + f" {rate(door):>22}")
    for label in ("with_mask", "without_mask"):
        both = [h for _, lab, hits in rows if lab == label for key, value in hits.items() if key != "close-up"
                for h in value]
        print(f"{'both sets':<15} {label:<13} door framing {rate(both)}")


def print_work(detector: Detector) -> None:
    """Work per window, mean and max, by kind of window: what an H7 timing would have to multiply."""
    print("\nwork per find_features call (mean / max); every call scans the same window positions")
    for kind, works in detector.work.items():
        cells = [f"{name} {np.mean([getattr(w, name) for w in works]):,.0f} / {max(getattr(w, name) for w in works):,}"
                 for name in WORK_FIELDS]
        print(f"  {kind:<26} windows {works[0].windows:,}; " + "; ".join(cells))
    print("  H7 milliseconds: unmeasured. No sourced cycle figure for imlib_detect_objects on the Cortex-M7 "
          "exists; time find_features on a board (or count cycles of the C built for it) and scale by these counts.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cascade", type=Path, help="frontalface cascade from the OpenMV source (see --help)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with facemask-v1, facemask-extra, scenes-negative")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.4, 0.55, 0.7])
    parser.add_argument("--threshold", type=float, default=haar.EXAMPLE_THRESHOLD)
    parser.add_argument("--scale-factor", type=float, default=haar.EXAMPLE_SCALE_FACTOR)
    parser.add_argument("--stages", type=int, default=25, help="HaarCascade(..., stages=N)")
    parser.add_argument("--limit", type=positive_int, default=None, help="at most N faces per set and label")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    if not args.cascade.is_file():
        print(f"{args.cascade}: no such file; extract it from github:openmv/openmv (see --help)", file=sys.stderr)
        return 2
    data = args.cascade.read_bytes()
    try:
        cascade = haar.load_cascade(data, args.stages)
    except ValueError as exc:
        raise UserError(f"{args.cascade}: {exc}; pass the frontalface cascade from the OpenMV source (see --help)") from None
    detector = Detector(cascade, args.threshold, args.scale_factor)
    print(f"cascade {args.cascade} sha256 {hashlib.sha256(data).hexdigest()[:12]}: {cascade.width}x{cascade.height}, "
          f"{len(cascade.stages)} stages, {cascade.features} features, {cascade.rectangles} rectangles")
    print(f"find_features(threshold={args.threshold}, scale_factor={args.scale_factor}) on the 200x200 RGB565 window")

    scenes = [open_rgb(p) for p in real_test_scenes(args.data / "scenes-negative")]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    n = 0
    rows, centred_rows = [], []
    for set_name in ("facemask-v1", "facemask-extra"):
        for label in ("with_mask", "without_mask"):
            paths = manifest_paths(args.data / set_name, "test", label)[: args.limit]
            hits = {"close-up": []} | {f"{f:.0%} of window": [] for f in args.fractions}
            centred = {f"{f:.0%} of window": [] for f in args.fractions}
            for path in paths:
                face = open_rgb(path)
                hits["close-up"].append(bool(detector.rects(preprocess.camera_window_rgb565(face), "close-up face")))
                for fraction in args.fractions:
                    scene = scenes[int(rng.integers(len(scenes)))]
                    window = door_frame(face, scene, fraction, rng)
                    found = detector.rects(window, "door-framed face")
                    hits[f"{fraction:.0%} of window"].append(bool(found))
                    centred[f"{fraction:.0%} of window"].append(centred_on(found, face_box(window, scene)))
                n += 1 + len(args.fractions)
            rows.append((set_name, label, hits))
            centred_rows.append((set_name, label, centred))
    negatives = manifest_paths(args.data / "scenes-negative", "test")
    false_hits = [bool(detector.rects(preprocess.camera_window_rgb565(open_rgb(p)), "scene, no face"))
                  for p in negatives]
    seconds = time.perf_counter() - started

    framing = ", ".join(f"{f:.0%}" for f in args.fractions)
    print_table(f"detected (find_features returns any rectangle); door framing = faces at {framing} of the "
                "window in real scenes", rows, list(rows[0][2]))
    print_table("door framing, a rectangle centred on the pasted face", centred_rows, list(centred_rows[0][2]))
    print(f"\nscenes-negative test (no face, whole window): false detections {rate(false_hits)}")
    print_work(detector)
    print(f"{n + len(negatives)} detector runs in {seconds:.0f} s on this host")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
