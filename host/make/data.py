"""Image folders to labelled, board-preprocessed arrays.

Accepted layouts (class folder names are matched through `LABEL_ALIASES`, case-insensitively):
- facemask-v1: `manifest.csv` (path, label, split, group) beside `train/` and `test/`;
- split folders: `Train|Validation|Test/WithMask|WithoutMask` (Face Mask 12K) or `train/test/...`;
- flat: `with_mask/` and `without_mask/` (a test split is then carved out, by near-duplicate group).
Every file that is not used is reported with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from host import preprocess
from host.errors import UserError

POSITIVE = "with_mask"
NEGATIVE = "without_mask"
LABELS = [NEGATIVE, POSITIVE]  # index = model output class; the sigmoid output is P(with_mask)
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "facemask-v1"

LABEL_ALIASES = {
    "withmask": POSITIVE, "mask": POSITIVE, "masked": POSITIVE, "masks": POSITIVE, "yes": POSITIVE,
    "withoutmask": NEGATIVE, "nomask": NEGATIVE, "unmasked": NEGATIVE, "nomasks": NEGATIVE,
    "withoutmasks": NEGATIVE, "no": NEGATIVE, "bare": NEGATIVE,
}
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def default_data_dir() -> Path:
    return Path(os.environ.get("TINYMASK_DATA", DEFAULT_DATA))


def canonical_label(name: str) -> str | None:
    key = re.sub(r"[^a-z]", "", name.lower())
    return LABEL_ALIASES.get(key)


def canonical_split(name: str) -> str | None:
    return SPLIT_ALIASES.get(re.sub(r"[^a-z]", "", name.lower()))


@dataclass
class Sample:
    path: Path
    label: str
    split: str | None  # train, val, test, or None when the layout has no splits
    group: str | None = None


@dataclass
class Skipped:
    path: Path
    reason: str


@dataclass
class Split:
    pixels: np.ndarray  # uint8 (n, 32, 32, 3), board-faithful
    labels: np.ndarray  # int (n,), index into LABELS
    groups: list[str]
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def concat(*splits: "Split") -> "Split":
        return Split(
            np.concatenate([s.pixels for s in splits]), np.concatenate([s.labels for s in splits]),
            [g for s in splits for g in s.groups], [p for s in splits for p in s.paths],
        )

    def subset(self, index) -> "Split":
        index = np.asarray(index, dtype=int)
        return Split(
            self.pixels[index], self.labels[index],
            [self.groups[i] for i in index], [self.paths[i] for i in index],
        )


@dataclass
class Dataset:
    root: Path
    layout: str
    train: Split
    val: Split
    test: Split
    skipped: list[Skipped] = field(default_factory=list)
    fingerprint: str = ""

    def counts(self) -> dict:
        return {
            name: {label: int((split.labels == i).sum()) for i, label in enumerate(LABELS)}
            for name, split in (("train", self.train), ("val", self.val), ("test", self.test))
        }


# ---- discovery -------------------------------------------------------------------------------


def discover(root: Path) -> tuple[list[Sample], list[Skipped], str]:
    """Find labelled image files under root; returns samples, skipped files and the layout name."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: data folder does not exist; pass --data DIR or set TINYMASK_DATA")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; --data must name a folder of class folders")
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return _from_manifest(root, manifest) + ("manifest",)
    samples: list[Sample] = []
    skipped: list[Skipped] = []
    split_dirs = [d for d in _subdirs(root) if canonical_split(d.name)]
    layout = "split-folders" if split_dirs else "class-folders"
    for split_dir in split_dirs or [root]:
        split = canonical_split(split_dir.name) if split_dirs else None
        for class_dir in _subdirs(split_dir):
            label = canonical_label(class_dir.name)
            if label is None:
                skipped.append(Skipped(class_dir, "folder is not a known class (rename it with_mask or without_mask)"))
                continue
            for path in sorted(class_dir.rglob("*")):
                if path.is_file():
                    if _is_candidate(path, skipped):
                        samples.append(Sample(path, label, split))
    return samples, skipped, layout


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _is_candidate(path: Path, skipped: list[Skipped]) -> bool:
    if path.name.startswith("."):
        skipped.append(Skipped(path, "hidden file"))
        return False
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        skipped.append(Skipped(path, f"not an image file ({path.suffix or 'no extension'})"))
        return False
    return True


def _from_manifest(root: Path, manifest: Path) -> tuple[list[Sample], list[Skipped]]:
    samples, skipped = [], []
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{manifest}: missing column(s) {sorted(missing)}; expected path,label[,split,group]")
        for row in reader:
            path = root / row["path"]
            label = canonical_label(row["label"])
            if label is None:
                skipped.append(Skipped(path, f"unknown label {row['label']!r} in manifest"))
                continue
            if not path.is_file():
                skipped.append(Skipped(path, "listed in manifest but missing"))
                continue
            if _is_candidate(path, skipped):
                split = canonical_split(row.get("split") or "") if row.get("split") else None
                samples.append(Sample(path, label, split, row.get("group") or None))
    return samples, skipped


# ---- decoding --------------------------------------------------------------------------------


def load_image(path: Path) -> Image.Image:
    """Decode any common image to 8-bit RGB: EXIF orientation, transparency on white, CMYK, 16-bit."""
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise ValueError("not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt image ({exc})") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def decode(samples: list[Sample], skipped: list[Skipped], augment: bool = False, progress: bool = True):
    """Decode samples to board pixels; undecodable files move to `skipped`."""
    kept, pixels = [], []
    for sample in tqdm(samples, desc="decode", unit="img", disable=not progress, leave=False):
        try:
            image = load_image(sample.path)
        except (ValueError, OSError) as exc:
            skipped.append(Skipped(sample.path, str(exc)))
            continue
        kept.append(sample)
        pixels.append(preprocess.board_pixels(image))
    return kept, np.stack(pixels) if pixels else np.zeros((0, 32, 32, 3), np.uint8)


# ---- near-duplicate groups and splits ---------------------------------------------------------


def average_hash(path: Path, size: int = 16) -> np.ndarray:
    image = load_image(path).convert("L").resize((size, size), Image.Resampling.BOX)
    array = np.asarray(image, dtype=np.float32)
    return (array > array.mean()).reshape(-1)


def near_duplicate_groups(samples: list[Sample], max_distance: int = 8) -> list[str]:
    """Group images whose 16x16 average hashes differ in at most max_distance bits (union-find)."""
    hashes = np.stack([average_hash(s.path) for s in samples]).astype(np.uint8)
    n = len(samples)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        distances = (hashes[i + 1:] != hashes[i]).sum(axis=1)
        for j in np.nonzero(distances <= max_distance)[0]:
            a, b = find(i), find(i + 1 + int(j))
            if a != b:
                parent[b] = a
    return [f"g{find(i):06d}" for i in range(n)]


def group_split(groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so that whole groups go to one side; about `fraction` of items go to the second."""
    unique = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    sizes = {g: 0 for g in unique}
    for g in groups:
        sizes[g] += 1
    target, taken, chosen = fraction * len(groups), 0, set()
    for g in unique:
        if taken >= target:
            break
        chosen.add(g)
        taken += sizes[g]
    second = np.array([i for i, g in enumerate(groups) if g in chosen], dtype=int)
    first = np.array([i for i, g in enumerate(groups) if g not in chosen], dtype=int)
    return first, second


def fingerprint(samples: list[Sample]) -> str:
    """sha256 over (relative path, label, split, size, mtime-free content hash prefix)."""
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: str(s.path)):
        digest.update(f"{s.path.name}|{s.label}|{s.split}|{s.path.stat().st_size}\n".encode())
        with open(s.path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def load_dataset(
    root: Path,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 1337,
    limit: int | None = None,
    progress: bool = True,
) -> Dataset:
    """Discover, decode and split. `limit` keeps at most that many images per split and class (for CI)."""
    samples, skipped, layout = discover(Path(root))
    if not samples:
        raise UserError(f"{root}: no images found; expected class folders such as with_mask/ and without_mask/")
    if limit:
        samples = _limit(samples, limit)
    samples, pixels = decode(samples, skipped, progress=progress)
    present = {s.label for s in samples}
    if len(present) < 2:
        only = ", ".join(sorted(present)) or "none"
        raise UserError(f"{root}: only one class has readable images ({only}); add images of both with_mask and without_mask")
    if any(s.group is None for s in samples):
        for s, g in zip(samples, near_duplicate_groups(samples)):
            s.group = s.group or f"{s.split}:{g}"
    everything = _as_split(samples, pixels)
    splits = [s.split for s in samples]
    train_idx = np.array([i for i, sp in enumerate(splits) if sp in ("train", None)], dtype=int)
    val_idx = np.array([i for i, sp in enumerate(splits) if sp == "val"], dtype=int)
    test_idx = np.array([i for i, sp in enumerate(splits) if sp == "test"], dtype=int)
    if len(test_idx) == 0:
        keep, carved = group_split([everything.groups[i] for i in train_idx], test_fraction, seed + 1)
        train_idx, test_idx = train_idx[keep], train_idx[carved]
    if len(val_idx) == 0:
        keep, carved = group_split([everything.groups[i] for i in train_idx], val_fraction, seed)
        train_idx, val_idx = train_idx[keep], train_idx[carved]
    for name, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx)):
        if len(idx) == 0:
            raise UserError(f"{root}: the {name} split is empty; add more images (at least a few per class)")
    return Dataset(
        root=Path(root), layout=layout,
        train=everything.subset(train_idx), val=everything.subset(val_idx), test=everything.subset(test_idx),
        skipped=skipped, fingerprint=fingerprint(samples),
    )


def load_test_split(root: Path, limit: int | None = None, progress: bool = True) -> tuple[Split, list[Skipped]]:
    """Images to evaluate on: the test split when the folder has one, else every labelled image
    (for example an on-device set made by tools.dataset). No training split is needed."""
    samples, skipped, _ = discover(Path(root))
    if any(s.split == "test" for s in samples):
        samples = [s for s in samples if s.split == "test"]
    if limit:
        samples = _limit(samples, limit)
    samples, pixels = decode(samples, skipped, progress=progress)
    if not samples:
        raise UserError(f"{root}: no readable images to evaluate; expected with_mask/ and without_mask/ folders")
    return _as_split(samples, pixels), skipped


def _as_split(samples: list[Sample], pixels: np.ndarray) -> Split:
    labels = np.array([LABELS.index(s.label) for s in samples])
    return Split(pixels, labels, [s.group or "" for s in samples], [s.path for s in samples])


def _limit(samples: list[Sample], limit: int) -> list[Sample]:
    counts: dict[tuple, int] = {}
    kept = []
    for s in samples:
        key = (s.split, s.label)
        if counts.get(key, 0) < limit:
            counts[key] = counts.get(key, 0) + 1
            kept.append(s)
    return kept


def skipped_report(skipped: list[Skipped]) -> str:
    return "\n".join(f"  skipped {s.path}: {s.reason}" for s in skipped)
