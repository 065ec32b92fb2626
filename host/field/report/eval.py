"""The paper's on-board evaluation, from what the cameras logged and captured.

- `on_device_accuracy`: a person sorted captured frames into label folders (tools.dataset); the
  camera's logged decision for each frame is compared with the folder: accuracy, precision, recall,
  F1 and a confusion matrix.
- `board_vs_host`: every captured frame goes through the host's int8 model (the real TFLM
  interpreter, contract-1 preprocessing); its decision is compared with the one the board logged.
  Captures are JPEGs, so the host sees slightly different pixels than the board did: agreement
  below 100% near the threshold is expected, and every disagreement is listed.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from host.errors import UserError
from host.field.report import captures
from host.make.data import IMAGE_SUFFIXES, canonical_label

FRAME_NAME = re.compile(r"^(?:(?P<device>.+)-)?b(?P<boot>\d+)-s(?P<seq>\d+)$")


@dataclass
class LabelledFrame:
    path: Path
    truth: str
    device_id: str | None
    boot: int | None
    seq: int | None


def labelled_frames(folder: Path) -> list[LabelledFrame]:
    """Images under DIR/<label>/ with the (device, boot, seq) of the frame each one is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--labelled {folder}: no such folder; pass the output of `python -m tools.dataset`")
    manifest = {}
    if (folder / "manifest.csv").is_file():
        with open(folder / "manifest.csv", newline="") as f:
            manifest = {Path(row["path"]).name: row for row in csv.DictReader(f) if row.get("path")}
    frames = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        truth = canonical_label(label_dir.name) or label_dir.name
        for image in sorted(label_dir.iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            row = manifest.get(image.name, {})
            match = FRAME_NAME.match(image.stem)
            device = row.get("device_id") or (match["device"] if match else None)
            boot = _int(row.get("boot")) if _int(row.get("boot")) is not None else _int(match and match["boot"])
            seq = _int(row.get("seq")) if _int(row.get("seq")) is not None else _int(match and match["seq"])
            frames.append(LabelledFrame(image, truth, device or None, boot, seq))
    if not frames:
        raise UserError(f"--labelled {folder}: no images in label folders (expected {folder}/<label>/*.jpg)")
    return frames


def _int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def on_device_accuracy(con, folder: Path, positive: str, order: list[str] | None = None) -> dict:
    """Logged decision vs the label a person gave each captured frame."""
    frames = labelled_frames(folder)
    devices = [d for (d,) in con.execute("SELECT DISTINCT device_id FROM sel").fetchall()]
    only_device = devices[0] if len(devices) == 1 else None
    table = pa.table({
        "i": list(range(len(frames))),
        "device_id": [f.device_id or only_device for f in frames],
        "boot": pa.array([f.boot for f in frames], pa.int64()),
        "seq": pa.array([f.seq for f in frames], pa.int64()),
    })
    con.register("labelled", table)
    try:
        found = dict(con.execute("""
            SELECT l.i, s.label FROM labelled l JOIN sel s
            ON s.device_id = l.device_id AND s.boot = l.boot AND s.seq = l.seq AND s.kind = 'F'""").fetchall())
    finally:
        con.unregister("labelled")
    pairs = [(f.truth, found[i]) for i, f in enumerate(frames) if i in found]
    unmatched = [str(f.path) for i, f in enumerate(frames) if i not in found]
    result = classification_metrics(pairs, positive, order)
    result.update({"images": len(frames), "matched": len(pairs), "unmatched": len(unmatched),
                   "unmatched_examples": unmatched[:20], "folder": str(folder)})
    return result


def classification_metrics(pairs: list[tuple[str, str]], positive: str, order: list[str] | None = None) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of (truth, predicted) pairs;
    classes in `order` (the model's output order) first, any other after them."""
    seen = {t for t, _ in pairs} | {p for _, p in pairs}
    labels = [label for label in (order or []) if label in seen] + sorted(seen - set(order or []))
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for truth, predicted in pairs:
        matrix[index[truth], index[predicted]] += 1
    per_class = {}
    for label, i in index.items():
        tp = int(matrix[i, i])
        fp = int(matrix[:, i].sum() - tp)
        fn = int(matrix[i, :].sum() - tp)
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else None)
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": int(matrix[i].sum())}
    total = int(matrix.sum())
    return {
        "labels": labels, "confusion_matrix": matrix.tolist(), "rows_are": "true label",
        "accuracy": float(np.trace(matrix) / total) if total else None,
        "positive_label": positive, "positive": per_class.get(positive), "per_class": per_class,
    }


@dataclass
class Bundle:
    path: Path
    model_file: Path
    labels: list[str]
    positive: str
    threshold: float
    output_kind: str
    sha256: str | None = None
    door_threshold: float | None = None


def load_bundle(path: Path) -> Bundle:
    from tools.payload import plain_file_name

    card_path = Path(path) / "model_card.json"
    if not card_path.is_file():
        raise UserError(f"--bundle {path}: no model_card.json; build one with `python -m host.build` or pass "
                        "--bundle models/tinymask")
    try:
        card = json.loads(card_path.read_text())
    except (ValueError, OSError) as exc:
        raise UserError(f"{card_path}: not valid JSON ({str(exc)[:80]}); rebuild the bundle") from None
    if not isinstance(card, dict):
        raise UserError(f"{card_path}: not a model card (expected a JSON object); rebuild the bundle")
    model = plain_file_name(card_path, "model_file", card.get("model_file", "tinymask.tflite"), ".tflite")
    door = card.get("door_threshold")
    return Bundle(Path(path), Path(path) / model,
                  [str(x) for x in card.get("labels", ["without_mask", "with_mask"])],
                  card.get("positive_label", "with_mask"), float(card.get("threshold", 0.5)),
                  card.get("output_kind", "sigmoid"), card.get("sha256") if isinstance(card.get("sha256"), str) else None,
                  float(door) if isinstance(door, (int, float)) and not isinstance(door, bool) else None)


def decide(outputs: np.ndarray, bundle: Bundle) -> tuple[str, float]:
    """The board's decision rule: (label, positive-class score) from the model's outputs."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if bundle.output_kind == "sigmoid" or len(outputs) == 1:
        score = float(outputs[0])
        negative = next(label for label in bundle.labels if label != bundle.positive)
        return (bundle.positive if score >= bundle.threshold else negative), score
    label = bundle.labels[int(np.argmax(outputs))]
    return label, float(outputs[bundle.labels.index(bundle.positive)])


def board_vs_host(frames: list[dict], bundle: Bundle, progress=None, tally: captures.CaptureTally | None = None) -> dict:
    """Re-run every captured frame through the host int8 model; list each frame where decisions differ.
    A capture that is missing, unreadable or refused (its path leaves the card) is counted, not compared."""
    from host import preprocess
    from host.tflm import Int8Model

    tally = tally if tally is not None else captures.CaptureTally()
    model = Int8Model(bundle.model_file)
    size = model.input_size  # the captures drawn into the bundle's own input, as the board did
    compared, missing, skipped, differing, score_gaps = 0, [], 0, [], []
    for frame in frames:
        image = captures.load(frame, tally)
        if image is None:
            if frame.get("capture_status") == "missing":
                missing.append(str(frame["image"]))
            else:
                skipped += 1
            if progress is not None:
                progress(1)
            continue
        path = captures.capture_path(frame["root"], frame["image"])
        pixels = preprocess.board_pixels(image, size)
        label, score = decide(model.scores(pixels)[0], bundle)
        compared += 1
        if frame["score"] is not None:
            score_gaps.append(abs(score - frame["score"]))
        if label != frame["label"]:
            differing.append({**frame, "path": str(path), "host_label": label, "host_score": round(score, 4)})
        if progress is not None:
            progress(1)
    return {
        "compared": compared, "agree": compared - len(differing),
        "agreement": (compared - len(differing)) / compared if compared else None,
        "score_abs_diff_mean": float(np.mean(score_gaps)) if score_gaps else None,
        "score_abs_diff_max": float(np.max(score_gaps)) if score_gaps else None,
        "missing_images": len(missing), "missing_examples": missing[:20], "unreadable_images": skipped,
        "differing": differing, "model": str(bundle.model_file), "threshold": bundle.threshold,
    }
