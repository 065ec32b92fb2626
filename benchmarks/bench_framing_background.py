"""Issue 13: what sets the door-framed threshold, the small face or the scene behind it?

    python benchmarks/bench_framing_background.py BUNDLE [BUNDLE ...]

In every build the door-framed unmasked faces set the 1%-unmasked door threshold (docs/model.md).
This scores each bundle's int8 model (the board's TFLM kernels) on facemask-extra test framed as the
build frames it (host.make.ood.door_framed_split: 40-70% of the window in a scenes-negative test
photo), and on the very same faces at the same size and place in front of each scene's mean colour.
Printed per bundle, at its card's threshold: unmasked and masked faces admitted in both framings,
the 1%-unmasked level each framing alone would need, and, for the admitted unmasked faces, how the
model scores the scene behind them alone against all scenes. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.errors import run_script  # noqa: E402
from host.framing import real_test_scenes  # noqa: E402
from host.make import bundle as bundle_mod  # noqa: E402
from host.make import data as data_mod  # noqa: E402
from host.make import evaluate, ood  # noqa: E402
from host.make.seeds import pooled  # noqa: E402


def scene_pixels(scene_paths: list[Path]) -> np.ndarray:
    """Each scene alone, filling the window, through the board's path (as the no-face test scores it)."""
    split, _ = data_mod.load_test_split(data_mod.SHARED_DATASETS / "scenes-negative", progress=False)
    row_of = {Path(p).resolve(): i for i, p in enumerate(split.paths)}
    return split.pixels[[row_of[Path(p).resolve()] for p in scene_paths]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path)
    args = parser.parse_args(argv)
    faces, _ = data_mod.load_test_split(data_mod.SHARED_DATASETS / "facemask-extra", progress=False)
    scenes = real_test_scenes(data_mod.SHARED_DATASETS / "scenes-negative")
    print(f"framing {len(faces.labels)} facemask-extra test faces in {len(scenes)} scenes, and in their mean colours ...",
          flush=True)
    scene_of: list[int] = []
    framed = ood.door_framed_split(faces, scenes, scene_of=scene_of)
    flat = ood.door_framed_split(faces, scenes, flat=True)
    scene_of_face = np.asarray(scene_of)
    alone = scene_pixels(scenes)
    labels = np.asarray(framed.labels)
    rows = []
    print("| bundle | threshold | unmasked adm. scene / flat | masked adm. scene / flat | 1%-unmasked level scene / flat"
          " | P(mask) of the scene alone: behind admitted unmasked / all scenes |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in args.bundles:
        card = bundle_mod.load_card(path)
        payload = (path / card["model_file"]).read_bytes()
        threshold = float(card["door_threshold"])
        s_scene, s_flat, s_alone = (evaluate.positive_scores(evaluate.int8_outputs(payload, p, progress=False))
                                    for p in (framed.pixels, flat.pixels, alone))
        in_scene, on_flat = (ood.door_figures(s, labels, threshold) for s in (s_scene, s_flat))
        let_in = np.nonzero((labels == ood.NEGATIVE) & evaluate.door_admits(s_scene, threshold))[0]
        row = {"unmasked_scene": in_scene["unmasked_admitted"], "unmasked_flat": on_flat["unmasked_admitted"],
               "masked_scene": in_scene["masked_admitted"], "masked_flat": on_flat["masked_admitted"],
               "level_scene": ood.calibrate(s_scene, labels), "level_flat": ood.calibrate(s_flat, labels),
               "behind": float(s_alone[scene_of_face[let_in]].mean()) if len(let_in) else float("nan"),
               "all": float(s_alone.mean())}
        rows.append(row)
        print(f"| {path} | {threshold:.3f} | {100 * row['unmasked_scene']:.2f}% / {100 * row['unmasked_flat']:.2f}%"
              f" | {100 * row['masked_scene']:.2f}% / {100 * row['masked_flat']:.2f}%"
              f" | {row['level_scene']:.3f} / {row['level_flat']:.3f} | {row['behind']:.3f} ({len(let_in)} faces) /"
              f" {row['all']:.3f} |", flush=True)
    if len(rows) > 1:
        def cell(key: str, kind: str = "percent") -> str:
            return pooled([r[key] for r in rows], kind)
        print(f"\nmean (sd) over {len(rows)} bundles: unmasked admitted {cell('unmasked_scene')} in scenes,"
              f" {cell('unmasked_flat')} on flat colour; masked admitted {cell('masked_scene')} / {cell('masked_flat')};"
              f" 1%-unmasked level {cell('level_scene', 'fraction')} / {cell('level_flat', 'fraction')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
