"""The model bundle in models/<name>/: .tflite, labels, model card, pictures. Written atomically.

All files are first written to a staging folder beside the bundle, then the staging folder replaces
the old bundle by rename. A build that fails before that point leaves the previous bundle untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

CARD_FORMAT = 1


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def is_tflite(payload: bytes) -> bool:
    """The FlatBuffer file identifier every .tflite carries at bytes 4-8."""
    return payload[4:8] == b"TFL3"


def file_names(name: str) -> dict:
    # ml >= 4.7 loads "<model path before the first '.'>.txt" as the labels: keep the two names paired.
    return {"model": f"{name}.tflite", "labels": f"{name}.txt", "card": "model_card.json"}


def stage(models_dir: Path, name: str) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(models_dir, name)
    staging = models_dir / f".staging-{name}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def write_core(staging: Path, name: str, payload: bytes, labels: list[str], card: dict) -> None:
    names = file_names(name)
    (staging / names["model"]).write_bytes(payload)
    (staging / names["labels"]).write_text("\n".join(labels) + "\n")
    (staging / names["card"]).write_text(json.dumps(card, indent=2) + "\n")


def write(models_dir: Path, name: str, payload: bytes, labels: list[str], card: dict, fill=None) -> Path:
    """models_dir/<name>/ written atomically: the model, labels and card, then `fill(staging)` (more
    files, or measurements on the staged bundle that change `card`: it is written again when fill
    returns True), then the swap. On any error the old bundle stays and the staging folder goes."""
    staging = stage(models_dir, name)
    try:
        write_core(staging, name, payload, labels, card)
        if fill is not None and fill(staging):
            write_core(staging, name, payload, labels, card)
        return commit(staging, models_dir, name)
    except BaseException:
        discard(staging)
        raise


def commit(staging: Path, models_dir: Path, name: str) -> Path:
    """Swap the staging folder in place of models/<name>."""
    for path in staging.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    final = models_dir / name
    previous = models_dir / f".previous-{name}-{os.getpid()}"
    if final.exists():
        os.replace(final, previous)
    try:
        os.replace(staging, final)
    except BaseException:
        if previous.exists() and not final.exists():
            os.replace(previous, final)  # put the old bundle back: never leave no bundle at all
        raise
    if previous.exists():
        shutil.rmtree(previous)
    return final


def remove_leftovers(models_dir: Path, name: str) -> None:
    """Staging folders of builds that were killed; a `.previous-` folder is restored if the bundle
    itself is missing (a build killed between the two renames of `commit`)."""
    final = models_dir / name
    for leftover in sorted(models_dir.glob(f".previous-{name}-*")):
        if not final.exists():
            os.replace(leftover, final)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in models_dir.glob(f".staging-{name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def load_card(bundle: Path) -> dict:
    return json.loads((bundle / "model_card.json").read_text())


def load_model(bundle: Path) -> tuple[dict, bytes]:
    """(the model card, the .tflite it names). The card must be a JSON object and its model_file a plain
    file name in the bundle folder (tools.payload.plain_file_name, deploy's rule), or one UserError line."""
    from host.errors import UserError
    from tools.payload import check_card_fields, plain_file_name

    card_path = bundle / "model_card.json"
    try:
        card = load_card(bundle)
    except (OSError, ValueError) as exc:
        raise UserError(f"{bundle}: no readable model card ({exc}); pass --bundle DIR of a build") from None
    if not isinstance(card, dict):
        raise UserError(f"{card_path}: not a JSON object; rebuild the bundle with `python -m host.build`")
    for key in ("labels", "sha256"):
        if key not in card:
            raise UserError(f"{card_path}: no {key!r} field; rebuild the bundle with `python -m host.build`")
    check_card_fields(card, card_path)
    name = plain_file_name(card_path, "model_file", card.get("model_file", "tinymask.tflite"), ".tflite")
    try:
        return card, (bundle / name).read_bytes()
    except OSError as exc:
        raise UserError(f"{bundle / name}: unreadable ({exc.strerror or exc}); the card names it as the model") from None
