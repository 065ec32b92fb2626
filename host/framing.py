"""Door framing: a face that fills only part of the camera's 200x200 window, in front of a scene.

The face sets frame faces close up; a door camera sees a person a step or two away, so the face
covers part of the window and the rest is corridor. `door_frame` pastes a face picture (square
crop) at `fraction` of the window's side into a scene picture filling the window, at a seeded
position, and returns what the window holds as RGB565 (contract 1 quantization). Used by the face
detector and presence benchmarks; the pixels then go through the board's own scaling.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from host import preprocess
from host.errors import UserError


def centred_offset(slack: int, rng: np.random.Generator) -> int:
    """Where a face with `slack` pixels to spare starts along one axis: around the centre, as a
    person steps in front of a door camera, up to a quarter of the slack off it."""
    return slack // 2 + int(rng.integers(-(slack // 4), slack // 4 + 1)) if slack else 0


def door_frame(face: Image.Image, scene: Image.Image, fraction: float, rng: np.random.Generator,
               window: int = preprocess.WINDOW) -> np.ndarray:
    """uint16 RGB565 (window, window): the scene with the face pasted at `fraction` of the side."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction {fraction} must be in (0, 1]")
    canvas = preprocess.square_crop(scene.convert("RGB")).resize((window, window), Image.Resampling.BILINEAR)
    side = max(8, int(round(fraction * window)))
    patch = preprocess.square_crop(face.convert("RGB")).resize((side, side), Image.Resampling.LANCZOS)
    slack = window - side
    x, y = centred_offset(slack, rng), centred_offset(slack, rng)
    canvas.paste(patch, (x, y))
    return preprocess.rgb888_to_rgb565(np.asarray(canvas, dtype=np.uint8))


REAL_SCENE_SOURCES = ("rwmfd", "rxkt", "openmv")  # scenes-negative sources that are photos, not procedural fields


def real_test_scenes(scenes_root: Path | str) -> list[Path]:
    """The photo scenes of scenes-negative's test split: backgrounds no training image comes from."""
    return manifest_paths(scenes_root, "test", sources=REAL_SCENE_SOURCES)


def manifest_paths(root: Path | str, split: str, label: str | None = None,
                   sources: tuple[str, ...] | None = None) -> list[Path]:
    """Files of one split (and label, and source) listed in a dataset's manifest.csv."""
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise UserError(f"{manifest}: missing; pass a dataset folder with a manifest.csv")
    out = []
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("split") != split or (label is not None and row.get("label") != label):
                continue
            if sources is not None and row.get("source") not in sources:
                continue
            path = (root / row["path"]).resolve()
            if root.resolve() not in path.parents:
                raise UserError(f"{manifest}: path {row['path']!r} leaves the dataset folder; fix the manifest")
            out.append(path)
    return out
