"""Shared fixtures: the dataset location (read-only, from ../shared) and small image factories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from host.make.data import default_data_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = default_data_dir()
    if not (root / "manifest.csv").is_file():
        pytest.fail(f"dataset not found at {root}: set TINYMASK_DATA to the facemask-v1 folder")
    return root


def copy_test_faces(data_dir: Path, folder: Path, per_class: int) -> list[str]:
    """A labelled folder as a user brings it: the first `per_class` test faces of each class in
    `folder/<label>/`. Returns their paths relative to `folder`."""
    copied = []
    for label in ("with_mask", "without_mask"):
        (folder / label).mkdir(parents=True)
        for source in sorted((data_dir / "test" / label).iterdir())[:per_class]:
            shutil.copy(source, folder / label / source.name)
            copied.append(f"{label}/{source.name}")
    return copied


@pytest.fixture(scope="session")
def reference_bundle() -> Path:
    bundle = REPO / "models" / "tinymask"
    if not (bundle / "model_card.json").is_file():
        pytest.fail("models/tinymask is missing: run python -m host.build")
    return bundle
