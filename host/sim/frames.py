"""Where the simulated camera's frames come from: image files, or a video-like folder of them.

A folder is read as frames sorted by name; a folder of class folders (`with_mask/`, `without_mask/`)
keeps each frame's folder label so a run can report its accuracy. What the camera's centred window
holds for a picture is `preprocess.camera_window_rgb565` (contract 1): the simulator never has its
own pixel path.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from host import preprocess
from host.errors import UserError
from host.make.data import IMAGE_SUFFIXES, canonical_label


@dataclass(frozen=True)
class Frame:
    path: Path
    label: str | None  # the folder's class, when the frames come from class folders


def list_frames(source: Path | str | list) -> list[Frame]:
    """Image files in a folder (sorted by relative path), or an explicit list of files."""
    if isinstance(source, (list, tuple)):
        return [f if isinstance(f, Frame) else Frame(Path(f), None) for f in source]
    root = Path(source)
    if root.is_file():
        return [Frame(root, None)]
    if not root.is_dir():
        raise UserError(f"frames folder {root} does not exist; pass --frames DIR with image files")
    frames, broken = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):  # ._photo.jpg, .thumbnails/: as the data loader
            continue
        if path.is_symlink() and not path.exists():
            broken.append(str(rel))
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            label = canonical_label(rel.parts[0]) if len(rel.parts) > 1 else None
            frames.append(Frame(path, label))
    if broken:
        print(f"warning: {len(broken)} broken link(s) in {root} skipped (first: {broken[0]})", file=sys.stderr)
    if not frames:
        raise UserError(f"no image files in {root}; pass --frames DIR with .jpg/.png frames")
    return frames


class FrameSource:
    """Frames in order, looping when the run asks for more; decoded windows are cached."""

    def __init__(self, frames: list[Frame], cache_size: int = 1024):
        if not frames:
            raise UserError("no frames to simulate")
        self.frames = frames
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Path, int], np.ndarray] = OrderedDict()

    def frame(self, index: int) -> Frame:
        return self.frames[index % len(self.frames)]

    def window_rgb565(self, index: int, window: int) -> np.ndarray:
        frame = self.frame(index)
        key = (frame.path, window)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            with Image.open(frame.path) as picture:
                pixels = preprocess.camera_window_rgb565(picture, window)
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"frame {frame.path} is not a readable image ({exc}); remove it") from None
        self._cache[key] = pixels
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pixels
