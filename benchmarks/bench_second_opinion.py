"""Issue 16 screening: can a second opinion on the frames the classifier admits keep the door shut
for pictures with no face, at no more than 1 point of masked admission?

    python benchmarks/bench_second_opinion.py [--bundle models/tinymask] [--fomo FOMO.tflite]

Two opinions, each swept over its own cut-off:
- `none cap`: a 3-class bundle admits a frame only when P(none) is also at or below the cap
  (P(with_mask) >= door threshold alone lets P(none) reach 1 - threshold);
- `fomo`: OpenMV's built-in `fomo_face_detection.tflite` must give some cell a face probability
  at or above the cut-off (run as bench_face_detector.py runs it: the window drawn to 96x96 with
  imlib's bilinear path, TFLM). Only frames the classifier admits would pay its cost. Skipped without
  `--fomo` (take it with `git -C <openmv> show v4.7.0:lib/models/fomo_face_detection.tflite`).
Sets: scenes-negative train and test (no face), facemask-extra and facemask-v1 test close up and
door-framed (40-70% of the window in a scenes-negative test photo, host.framing). Choose a cut-off on
the negatives' train split: the test split is what it is judged on. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from host import framing, preprocess  # noqa: E402
from host.errors import run_script  # noqa: E402
from host.make import data as data_mod  # noqa: E402
from host.make import evaluate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NONE_CAPS = (1.0, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
FOMO_CUTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)


def windows(root: Path, no_face_splits=("train", "test"), face_sets=("facemask-extra", "facemask-v1")
            ) -> dict[str, tuple[list[np.ndarray], np.ndarray | None]]:
    """Named sets of 200x200 RGB565 windows, with labels (None for no-face sets): scenes-negative's
    splits as they are, each face set's test split close up and door-framed (also bench_views')."""
    out = {}
    for split in no_face_splits:
        paths = framing.manifest_paths(root / "scenes-negative", split)
        out[f"no face, {split}"] = ([preprocess.camera_window_rgb565(data_mod.load_image(p)) for p in paths], None)
    scenes = [data_mod.load_image(p) for p in framing.real_test_scenes(root / "scenes-negative")]
    for name in face_sets:
        faces, _ = data_mod.load_test_split(root / name, progress=False)
        rng = np.random.default_rng(13)
        out[f"{name} close up"] = ([preprocess.camera_window_rgb565(data_mod.load_image(p)) for p in faces.paths],
                                   faces.labels)
        out[f"{name} door-framed"] = ([framing.door_frame(data_mod.load_image(p), scenes[int(rng.integers(len(scenes)))],
                                                          float(rng.uniform(0.4, 0.7)), rng) for p in faces.paths],
                                      faces.labels)
    return out


def shares(admitted: np.ndarray, labels: np.ndarray | None) -> str:
    if labels is None:
        return f"{admitted.mean():6.2%}"
    masked, unmasked = data_mod.LABELS.index("with_mask"), data_mod.LABELS.index("without_mask")
    return f"m {admitted[labels == masked].mean():6.2%} u {admitted[labels == unmasked].mean():5.2%}"


def sweep(title: str, cuts, admitted_at, sets) -> None:
    print(f"\n{title}")
    print(f"{'cut-off':>8}  " + "  ".join(f"{name:>22}" for name in sets))
    for cut in cuts:
        print(f"{cut:>8}  " + "  ".join(f"{shares(admitted_at(name, cut), labels):>22}"
                                        for name, (_, labels) in sets.items()), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "tinymask")
    parser.add_argument("--data", type=Path, default=data_mod.SHARED_DATASETS)
    parser.add_argument("--fomo", type=Path, default=None, help="fomo_face_detection.tflite from the OpenMV source")
    args = parser.parse_args(argv)
    card = json.loads((args.bundle / "model_card.json").read_text())
    payload = (args.bundle / card["model_file"]).read_bytes()
    labels = evaluate.bundle_labels(args.bundle / card["model_file"])
    none_label = card.get("none_label", "none")
    if none_label not in labels or "door_threshold" not in card:
        print(f"{args.bundle}: needs a 3-class bundle with a door threshold (P({none_label}) and the door rule);"
              " build one with tinymask build", file=sys.stderr)
        return 2
    threshold = card["door_threshold"]
    sets = windows(args.data)
    outputs = {name: evaluate.int8_outputs(payload, np.stack([preprocess.window_pixels(w) for w in ws]), False).astype(np.float64)
               for name, (ws, _) in sets.items()}
    first = {name: o[:, labels.index("with_mask")] >= threshold for name, o in outputs.items()}
    print(f"{args.bundle}: door threshold {threshold:.4f}; admitted = P(with_mask) >= it, then the second opinion"
          f"  (m / u: masked / unmasked faces admitted)")
    p_none = {name: o[:, labels.index(none_label)] for name, o in outputs.items()}
    sweep("none cap: P(none) <= cut-off as well", NONE_CAPS, lambda n, c: first[n] & (p_none[n] <= c), sets)
    if args.fomo:
        from bench_face_detector import Detector

        detector = Detector(args.fomo, 0.4)
        face = {name: np.array([detector.face_score(w) if a else 0.0 for w, a in zip(ws, first[name])])
                for name, (ws, _) in sets.items()}
        for name in sets:
            if sets[name][1] is None:
                print(f"{name}: FOMO face score of the {int(first[name].sum())} admitted pictures: "
                      + " ".join(f"{v:.3f}" for v in np.sort(face[name][first[name]])))
        sweep("fomo: some cell's face probability >= cut-off as well", FOMO_CUTS,
              lambda n, c: first[n] & (face[n] >= c), sets)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
