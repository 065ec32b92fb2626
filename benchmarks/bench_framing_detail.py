"""Issue 13: how much detail does a door-framed face keep, in the test and in each training shrink?

    python benchmarks/bench_framing_detail.py [--data ../shared/datasets/facemask-extra] [--limit 300]

For faces of facemask-extra's test split, each at a door-framing fraction f drawn from 0.4-0.7, the
face patch as the model sees it, about 32 f pixels across:
- `camera`: what the door-framed test does (host.framing.door_frame): the photo resized into f of
  the 200 px window, then the board's bilinear scaling to 32 px (host.preprocess);
- `box`, `board`, `window`: what training's door framing does with `--doorframe-shrink` (host.make.
  augment.door_framing): the 32 px picture area-averaged, or scaled by the board's bilinear, or the
  64 px camera-window copy scaled by the board's bilinear.
Detail is the mean absolute 4-neighbour Laplacian of the grey patch, inner pixels only (0-255
scale). A shrink whose detail is far from `camera` teaches the model faces a door never shows.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import framing, preprocess  # noqa: E402
from host.errors import positive_int, run_script  # noqa: E402
from host.make import augment  # noqa: E402
from host.make import data as data_mod  # noqa: E402

SHRINKS = ("camera", *augment.SHRINKS)


def detail(rgb: np.ndarray) -> float:
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(np.abs(lap).mean())


def face_patches(path: Path, fraction: float) -> dict[str, np.ndarray]:
    image = data_mod.load_image(path)
    picture = preprocess.board_pixels(image)  # the 32 px training picture
    side = int(round(preprocess.INPUT_SIZE * fraction))
    camera_side = int(round(preprocess.WINDOW * fraction))
    # the face alone, resized into its part of the window as the door-framed test pastes it
    face_in_window = framing.door_frame(image, image, 1.0, np.random.default_rng(0), window=camera_side)
    return {
        "camera": preprocess.window_pixels(face_in_window, side),
        "box": augment.shrunk(picture, side, "box"),
        "board": augment.shrunk(picture, side, "board"),
        "window": preprocess.window_pixels(augment.window_copy(image), side),  # as augment.door_framing
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=data_mod.SHARED_DATASETS / "facemask-extra")
    parser.add_argument("--limit", type=positive_int, default=300, help="test faces measured (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    paths = framing.manifest_paths(args.data, "test")[: args.limit]
    rng = np.random.default_rng(args.seed)
    scores = {name: [] for name in SHRINKS}
    for path in paths:
        for name, patch in face_patches(path, float(rng.uniform(0.4, 0.7))).items():
            scores[name].append(detail(patch))
    print(f"{len(paths)} facemask-extra test faces at 40-70% of the window; mean |Laplacian| of the face patch (sd)")
    for name in SHRINKS:
        values = np.array(scores[name])
        print(f"  {name:<7} {values.mean():6.1f} ({values.std(ddof=1):.1f})")


if __name__ == "__main__":
    sys.exit(run_script(main))
