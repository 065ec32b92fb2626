"""The model bundle and config.json as the deploy step puts them on the card."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from host.errors import UserError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"


def firmware_module(name: str):
    """Import a firmware module (pure ones: tmconfig, door, tmlog) in CPython, off sys.path."""
    spec = importlib.util.spec_from_file_location(f"tinymask_firmware_{name}", FIRMWARE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Bundle:
    dir: Path
    model: Path
    labels: Path | None
    card: dict

    @property
    def macs(self) -> int | None:
        return self.card.get("macs")


def load_bundle(path: Path | str) -> Bundle:
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"bundle {root} does not exist; build one with `python -m host.build` or pass --bundle DIR")
    card_path = root / "model_card.json"
    card: dict = {}
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
        except ValueError as exc:
            raise UserError(f"{card_path} is not valid JSON ({exc}); rebuild the bundle") from None
        model = root / card.get("model_file", "tinymask.tflite")
        labels = root / card.get("labels_file", "tinymask.txt")
    else:
        models = sorted(root.glob("*.tflite"))
        if len(models) != 1:
            raise UserError(f"bundle {root} has no model_card.json and {len(models)} .tflite files; "
                            "pass a folder written by `python -m host.build`")
        model = models[0]
        labels = model.with_suffix(".txt")
    if not model.is_file():
        raise UserError(f"bundle {root}: model file {model.name} is missing; rebuild the bundle")
    return Bundle(root, model, labels if labels.is_file() else None, card)


def parse_overrides(pairs: list[str]) -> dict:
    """--config key=value; the value is JSON when it parses (numbers, true/false, lists), else text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--config {pair!r}: expected key=value, e.g. --config debounce_frames=3")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def render_config(bundle: Bundle, overrides: dict | None = None) -> dict:
    """config.json for this bundle: model facts from the card, then the user's overrides, validated."""
    tmconfig = firmware_module("tmconfig")
    labels = bundle.card.get("labels")
    if labels is None and bundle.labels is not None:
        labels = [line.strip() for line in bundle.labels.read_text().splitlines() if line.strip()]
    raw = {
        "model_path": bundle.model.name,
        "labels_path": bundle.labels.name if bundle.labels else bundle.model.stem + ".txt",
        "model_sha256": hashlib.sha256(bundle.model.read_bytes()).hexdigest(),
    }
    for key in ("output_kind", "positive_label", "board"):
        if key in bundle.card:
            raw[key] = bundle.card[key]
    if labels:
        raw["labels"] = labels
    raw.update(overrides or {})
    config, errors = tmconfig.validate(raw)
    if errors:
        raise UserError("config: " + "; ".join(errors) + " (see docs/firmware.md for the keys)")
    return config


def deploy(bundle: Bundle, config: dict, target: Path, firmware: bool = True) -> list[str]:
    """Copy model, labels, config.json (and the firmware) where the board runs from."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in [bundle.model] + ([bundle.labels] if bundle.labels else []):
        shutil.copyfile(src, target / src.name)
        copied.append(src.name)
    (target / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    copied.append("config.json")
    if firmware:
        for src in sorted(FIRMWARE_DIR.glob("*.py")):
            shutil.copyfile(src, target / src.name)
            copied.append(src.name)
    return copied
