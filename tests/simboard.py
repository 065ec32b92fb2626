"""Helpers for the simulated-board tests: the reference bundle, frames the model is sure (or unsure)
about, and runs of the real firmware/main.py with their SD log read back by host.field.logread."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from PIL import Image

from host import preprocess
from host.make.data import default_data_dir
from host.sim import SimOptions, SimResult, simulate

REPO = Path(__file__).resolve().parents[1]

MASK, NO_MASK, UNSURE = "mask", "no_mask", "unsure"
THRESHOLD = 0.8  # tests pin the door threshold instead of taking the model card's


def bundle_dir() -> Path:
    """models/tinymask (TINYMASK_BUNDLE points the tests at another bundle)."""
    bundle = Path(os.environ.get("TINYMASK_BUNDLE", REPO / "models" / "tinymask"))
    if not (bundle / "model_card.json").is_file():
        pytest.fail(f"{bundle} is missing: run python -m host.build")
    return bundle


def dataset_test_images() -> list[Path]:
    root = default_data_dir() / "test"
    if not root.is_dir():
        pytest.fail(f"dataset not found at {root}: set TINYMASK_DATA to the facemask-v1 folder")
    return sorted(p for p in root.rglob("*.jpg"))


@functools.lru_cache(maxsize=2)
def host_rows(bundle: Path) -> dict[Path, list[float]]:
    """The dequantized outputs of every test image by the host's int8 path: board_pixels at the
    model's input size + real TFLM."""
    import json

    from host.tflm import Int8Model

    card = json.loads((bundle / "model_card.json").read_text())
    model = Int8Model(bundle / card["model_file"])
    rows = {}
    for path in dataset_test_images():
        with Image.open(path) as picture:
            rows[path] = [float(v) for v in model.scores(preprocess.board_pixels(picture, model.input_size))[0]]
    return rows


def host_label(row: list[float]) -> str:
    """The label the firmware logs for these outputs (firmware/infer.py: sigmoid at 0.5, softmax
    by its first largest output)."""
    from host.make.data import LABELS, LABELS_WITH_NONE

    if len(row) == 1:
        return LABELS[1] if row[0] >= 0.5 else LABELS[0]
    return LABELS_WITH_NONE[max(range(len(row)), key=lambda i: (row[i], -i))]


def host_outputs(bundle: Path) -> dict[Path, tuple[float, float]]:
    """(P(with_mask), P(none)) of every test image; P(none) is 0 for a two-class (sigmoid) bundle."""
    from host.make.data import LABELS_WITH_NONE

    positive, none = LABELS_WITH_NONE.index("with_mask"), LABELS_WITH_NONE.index("none")
    return {path: (row[0], 0.0) if len(row) == 1 else (row[positive], row[none])
            for path, row in host_rows(bundle).items()}


def host_scores(bundle: Path) -> dict[Path, float]:
    """P(with_mask) of every test image (see host_outputs)."""
    return {path: score for path, (score, _) in host_outputs(bundle).items()}


def frames_of(kind: str, n: int, bundle: Path | None = None) -> list[Path]:
    """n frames (cycled) the model is sure show a mask (>= 0.9), no mask (<= 0.1), or is unsure of
    (0.3..0.7): with THRESHOLD = 0.8 these are 'mask', 'no_mask' and 'unsure' to the door. With a
    none class, only frames it gives P(none) < 0.05 (so the label is with_mask or without_mask)."""
    outputs = host_outputs(bundle or bundle_dir())
    bands = {MASK: (0.9, 1.0), NO_MASK: (0.0, 0.1), UNSURE: (0.3, 0.7)}
    lo, hi = bands[kind]
    chosen = [p for p, (s, none) in sorted(outputs.items()) if lo <= s <= hi and none < 0.05]
    if not chosen:
        pytest.fail(f"the reference model has no test image with a score in [{lo}, {hi}]")
    return [chosen[i % len(chosen)] for i in range(n)]


def sequence(*parts: tuple[str, int]) -> list[Path]:
    """sequence((MASK, 5), (NO_MASK, 2)) -> frame files in that order."""
    frames: list[Path] = []
    for kind, n in parts:
        frames.extend(frames_of(kind, n))
    return frames


def run(tmp_path: Path, frames: list[Path], config: dict | None = None, **options) -> SimResult:
    cfg = {"threshold": THRESHOLD, "debounce_frames": 3, "open_ms": 500, "report_ms": 0}
    cfg.update(config or {})
    options.setdefault("sd_dir", tmp_path / "sd")
    options.setdefault("flash_dir", tmp_path / "flash")
    return simulate(SimOptions(frames=list(frames), bundle=bundle_dir(), config=cfg, **options))


def read_log(result: SimResult):
    """Every log file of the run, parsed by host.field.logread, in (boot, part) order."""
    from host.field.logread import ParsedLog, parse_log

    out = ParsedLog()
    for path in result.log_files():
        out.extend(parse_log(path.read_bytes(), str(path)))
    return out


def frame_records(result: SimResult):
    return [r for r in read_log(result).records if r.kind == "F"]


def events(result: SimResult, name: str) -> list:
    return [r for r in read_log(result).records if r.kind == "E" and r.event == name]


def relay_active_after(result: SimResult, t_ms: float) -> bool:
    """Was the relay driven to its active level at any time from t_ms on?"""
    history = result.relay.history
    level_at_t = None
    for t, level in history:
        if t <= t_ms:
            level_at_t = level
    if result.relay_active(level_at_t):
        return True
    return any(result.relay_active(level) for t, level in history if t > t_ms)
