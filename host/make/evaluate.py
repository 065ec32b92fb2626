"""Evaluate the int8 model with TensorFlow Lite Micro and the float32 model with Keras
(`python -m host.evaluate`). Writes a confusion matrix as PNG and text, and says what the door would do
with each picture at the bundle's door threshold."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host import preprocess, tflm
from host.errors import UserError, output_folder, run_cli
from host.make import data as data_mod
from host.make import plots

THRESHOLD = 0.5


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    k = len(labels)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y_true.astype(int), y_pred.astype(int)), 1)
    per_class = {}
    for i, label in enumerate(labels):
        tp = matrix[i, i]
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual)}
    total = matrix.sum()
    return {
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "count": int(total),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": labels,
    }


def float_outputs(model, pixels: np.ndarray) -> np.ndarray:
    """(n, outputs): one column (sigmoid, P(with_mask)) or one per label (softmax)."""
    return model.predict(preprocess.to_float_input(pixels), verbose=0, batch_size=256)


def int8_outputs(payload: bytes, pixels: np.ndarray, progress: bool = True, interpreter=None) -> np.ndarray:
    """Board-exact int8 outputs (n, outputs): the board's TFLM on the first pixels a model is scored
    on (its test split), then the fastest host interpreter shown identical there (host.tflm.board_exact)."""
    model = tflm.board_exact(payload, pixels, interpreter)
    if len(model.verify_inputs) == len(pixels) and np.array_equal(model.verify_inputs, preprocess.to_int8_input(pixels)):
        return model.verified_scores()
    chunks = [model.scores(pixels[i:i + 256])
              for i in tqdm(range(0, len(pixels), 256), desc="int8", unit="256 img", disable=not progress, leave=False)]
    return np.concatenate(chunks) if chunks else np.zeros((0, model.verified_scores().shape[1]), np.float32)


def positive_scores(outputs: np.ndarray) -> np.ndarray:
    """P(with_mask): the sigmoid's one output, or the softmax's with_mask column (index 1)."""
    return outputs[:, 0] if outputs.shape[1] == 1 else outputs[:, data_mod.LABELS_WITH_NONE.index(data_mod.POSITIVE)]


def predicted_labels(outputs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The label the firmware logs: sigmoid at the cut-off, softmax by its largest output."""
    return to_labels(outputs[:, 0], threshold) if outputs.shape[1] == 1 else outputs.argmax(axis=1)


def float_scores(model, pixels: np.ndarray) -> np.ndarray:
    return positive_scores(float_outputs(model, pixels))


def int8_scores(payload: bytes, pixels: np.ndarray, progress: bool = True) -> np.ndarray:
    return positive_scores(int8_outputs(payload, pixels, progress))


def to_labels(scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    return (scores >= threshold).astype(int)


def door_admits(scores: np.ndarray, threshold) -> np.ndarray:
    """firmware/door.py's "mask" for a positive-class score: at least the threshold, and above the
    no-mask band (score <= 1 - threshold, which wins where the two overlap, for safety). `threshold`
    may be an array broadcast against `scores`."""
    return (scores >= threshold) & (scores > 1.0 - threshold)


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a share (an accuracy, an admission rate): how far test-set noise
    alone can move it. Three lines of formula; scipy would be a 40 MB dependency for them."""
    if total == 0:
        return (0.0, 1.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))  # exact at p = 0 or 1


# what the door does with a picture of each true class (indices into LABELS_WITH_NONE)
DOOR_CLASSES = (("unmasked", data_mod.LABELS_WITH_NONE.index(data_mod.NEGATIVE)),
                ("masked", data_mod.LABELS_WITH_NONE.index(data_mod.POSITIVE)),
                ("no_face", data_mod.LABELS_WITH_NONE.index(data_mod.NONE)))


def door_admission(outputs: np.ndarray, split: data_mod.Split, threshold: float) -> dict:
    """Per true class, the pictures the door admits with a 95% Wilson interval, and the unmasked faces
    (the unsafe errors a user must look at) and no-face pictures it admits by name. Admitted as the
    firmware decides a frame (infer.py, door.py): `door_admits` its P(with_mask), and a softmax
    model's first largest output is not its none class."""
    admitted = door_admits(positive_scores(outputs), threshold)
    if outputs.shape[1] > data_mod.LABELS_WITH_NONE.index(data_mod.NONE):
        admitted &= outputs.argmax(axis=1) != data_mod.LABELS_WITH_NONE.index(data_mod.NONE)
    labels = np.asarray(split.labels)
    out: dict = {"threshold": threshold}
    for name, cls in DOOR_CLASSES:
        members = labels == cls
        if members.any():
            k, n = int(admitted[members].sum()), int(members.sum())
            out[name] = {"admitted": k, "images": n, "share": k / n, "ci95": wilson_interval(k, n)}
    for name, cls in (DOOR_CLASSES[0], DOOR_CLASSES[2]):
        out[f"{name}_admitted_files"] = [str(p) for p, t, a in zip(split.paths, labels, admitted) if t == cls and a]
    return out


def door_text(door: dict, source: str) -> str:
    lines = [f"door at threshold {door['threshold']:.3f} ({source}; per picture, the model alone: no presence gate,"
             " no debounce)"]
    for name, what in (("unmasked", "unmasked faces admitted"), ("masked", "masked faces admitted"),
                       ("no_face", "no-face pictures admitted")):
        if name in door:
            d = door[name]
            low, high = d["ci95"]
            lines.append(f"  {what:26}{d['admitted']:>6} / {d['images']:<6}{100 * d['share']:7.2f}%"
                         f"  (95% CI {100 * low:.2f}-{100 * high:.2f}%)")
    files = door["unmasked_admitted_files"]
    if files:
        more = f" ... ({len(files)} in all, metrics.json lists them)" if len(files) > 5 else ""
        lines.append("  unmasked faces it admits: " + ", ".join(files[:5]) + more)
    return "\n".join(lines)


def labels_for(labels: list[str], outputs: np.ndarray, true_labels: np.ndarray) -> list[str]:
    """The bundle's labels, widened to every class the model can answer or the folder holds: a
    three-output model without a card, or no-face pictures before a two-class model (a row it can
    never answer)."""
    classes = max(len(labels), outputs.shape[1] if outputs.shape[1] > 1 else 2,
                  int(np.max(true_labels)) + 1 if len(true_labels) else 0)
    return labels + data_mod.LABELS_WITH_NONE[len(labels):classes]


def evaluate(model, payload: bytes, split: data_mod.Split, progress: bool = True,
             labels: list[str] | None = None, door_threshold: float | None = None) -> dict:
    f_out, q_out = float_outputs(model, split.pixels), int8_outputs(payload, split.pixels, progress)
    labels = labels_for(labels or data_mod.LABELS, q_out, split.labels)
    f_scores, q_scores = positive_scores(f_out), positive_scores(q_out)
    f_pred, q_pred = predicted_labels(f_out), predicted_labels(q_out)
    door = {} if door_threshold is None else {"door": door_admission(q_out, split, door_threshold)}
    return {**door,
        "threshold": THRESHOLD,
        "float32": classification_metrics(split.labels, f_pred, labels),
        "int8": classification_metrics(split.labels, q_pred, labels),
        "agreement": float((f_pred == q_pred).mean()) if len(f_pred) else 0.0,
        "max_score_difference": float(np.abs(f_scores - q_scores).max()) if len(f_scores) else 0.0,
        "board_tflm": asdict(tflm.board_exact(payload, split.pixels).verification),
        "misclassified_int8": [
            {"path": str(p), "true": labels[t], "score": float(s)}
            for p, t, s, q in zip(split.paths, split.labels, q_scores, q_pred) if t != q
        ],
    }


def confusion_text(metrics: dict) -> str:
    labels = metrics["labels"]
    width = max(len(label) for label in labels) + 2
    lines = ["true \\ predicted".ljust(width + 6) + "".join(label.rjust(width) for label in labels)]
    for label, row in zip(labels, metrics["confusion_matrix"]):
        lines.append(label.ljust(width + 6) + "".join(str(v).rjust(width) for v in row))
    lines.append(f"accuracy {metrics['accuracy']:.4f} on {metrics['count']} images")
    return "\n".join(lines) + "\n"


def write_confusion(metrics: dict, out: Path, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "confusion_matrix.txt").write_text(confusion_text(metrics))
    plots.confusion_matrix(np.array(metrics["confusion_matrix"]), metrics["labels"], title, out / "confusion_matrix.png")


def metrics_table(results: dict) -> str:
    rows = [f"{'':14}{'accuracy':>9}{'class':>15}{'precision':>10}{'recall':>8}{'F1':>8}"]
    for kind in [k for k in ("float32", "int8") if k in results]:
        m = results[kind]
        for i, (label, c) in enumerate(m["per_class"].items()):
            head = f"{kind:14}{m['accuracy']:9.4f}" if i == 0 else " " * 23
            rows.append(f"{head}{label:>15}{c['precision']:10.4f}{c['recall']:8.4f}{c['f1']:8.4f}")
    if "agreement" in results:
        rows.append(f"int8 vs float32 agreement {results['agreement']:.4f}")
    return "\n".join(rows)


def evaluate_int8(payload: bytes, split: data_mod.Split, labels: list[str], progress: bool = True,
                  door_threshold: float | None = None) -> dict:
    """The int8 model alone (a bundle's .tflite, no Keras model): what the board would answer."""
    outputs = int8_outputs(payload, split.pixels, progress)
    labels = labels_for(labels, outputs, split.labels)
    predicted = predicted_labels(outputs)
    door = {} if door_threshold is None else {"door": door_admission(outputs, split, door_threshold)}
    return {
        **door,
        "threshold": THRESHOLD,
        "int8": classification_metrics(split.labels, predicted, labels),
        "misclassified_int8": [{"path": str(p), "true": labels[t], "predicted": labels[q]}
                               for p, t, q in zip(split.paths, split.labels, predicted) if t != q],
    }


def bundle_card(tflite: Path) -> dict | None:
    """The model card of the bundle the .tflite sits in; None for a .tflite outside a bundle."""
    card = tflite.parent / "model_card.json"
    if not card.is_file():
        return None
    try:
        loaded = json.loads(card.read_text())
        labels = loaded["labels"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{card}: unreadable model card ({exc}); rebuild the bundle with tinymask build") from None
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise UserError(f"{card}: labels {labels!r} are not a list of two or more class names; rebuild the bundle"
                        " with tinymask build")
    return loaded


def door_threshold_of(card: dict | None, given: float | None) -> tuple[float | None, str]:
    """(threshold, where it came from): --threshold, else the card's calibrated door threshold."""
    if given is not None:
        if not 0.0 <= given <= 1.0:
            raise UserError(f"--threshold {given}: a probability from 0 to 1, e.g. --threshold 0.8")
        return given, "--threshold"
    if card and card.get("door_threshold") is not None:
        value = card["door_threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise UserError(f"model card door_threshold {value!r} is not a probability from 0 to 1; re-measure the"
                            " bundle with tinymask calibrate --write, or pass --threshold T")
        return float(value), "the model card's door_threshold"
    return None, ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m host.evaluate", description=__doc__,
        epilog="A bundle alone on an on-device set: tinymask evaluate --tflite models/tinymask/tinymask.tflite --data ondevice/")
    parser.add_argument("--tflite", type=Path, default=Path("runs/train/model_int8.tflite"),
                        help="int8 model, e.g. BUNDLE/tinymask.tflite (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=None,
                        help="float32 Keras model to compare with, e.g. runs/train/model.keras (default: none, int8 only)")
    parser.add_argument("--data", type=Path, default=None,
                        help="image folder: its test split, or every image when it has no splits, e.g. an on-device set"
                             " from tools.dataset (default: $TINYMASK_DATA or facemask-v1)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split and class")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="folder for metrics.json and the confusion matrix")
    parser.add_argument("--threshold", type=float, default=None,
                        help="door threshold for the door figures (default: the bundle card's door_threshold)")
    args = parser.parse_args(argv)
    for path in [p for p in (args.tflite, args.model) if p is not None]:
        if not path.is_file():
            raise UserError(f"{path}: not found; pass --tflite BUNDLE/<name>.tflite (and --model MODEL.keras to"
                            " compare with the float32 model)")
    output_folder(args.out)
    from host.make.checks import input_size

    # before the data is decoded: a wrong file is a one-line error naming it; the pictures are decoded for its input
    size = input_size(args.tflite.read_bytes(), args.tflite)
    card = bundle_card(args.tflite)
    labels = list(card["labels"]) if card else data_mod.LABELS
    threshold, source = door_threshold_of(card, args.threshold)
    split, skipped = data_mod.load_test_split(args.data or data_mod.default_data_dir(), limit=args.limit, size=size)
    if skipped:
        print(data_mod.skipped_report(skipped))
    if args.model is None:
        results = evaluate_int8(args.tflite.read_bytes(), split, labels, door_threshold=threshold)
    else:
        import keras

        results = evaluate(keras.models.load_model(args.model), args.tflite.read_bytes(), split, labels=labels,
                           door_threshold=threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(results, indent=2))
    write_confusion(results["int8"], args.out, "int8 (TFLM) on test")
    print(metrics_table(results))
    print(confusion_text(results["int8"]))
    if "door" in results:
        print(door_text(results["door"], source))
    else:
        print("no door figures: this .tflite has no bundle card with a door_threshold; pass --threshold T")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
