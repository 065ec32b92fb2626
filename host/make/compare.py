"""Compare model designs, pruning and quantization on one table and one picture (`python -m host.compare`).

Rows (candidates), all trained on the same splits with the same recipe (host.train):
- tiny_cnn, the reference (the paper's model, what host.build ships);
- squeezenet and squeezenet_mod (the paper's comparison models, host.make.zoo), plus any other --archs;
- the reference pruned by L1 filter norm at each --prune-rates, one-shot and iterative, each
  fine-tuned (host.make.prune);
- --robust-archs trained with the "robust" augmentation (host.make.augment / host.make.degrade).
Columns: parameters, float32 and int8 .tflite bytes, MACs, TFLM tensor arena, estimated board
inference ms and FPS (inference only, and the whole loop with camera and logging), float32 and int8
accuracy with per-class precision / recall / F1 (int8 on the TFLM interpreter), int8 accuracy under
each test-time degradation (host.make.degrade) and their mean, and whether the model fits the board.

Writes compare.json, compare.csv, compare.md (the table), compare.png (int8 accuracy against FPS
and against int8 bytes, Pareto fronts marked) and every row as a bundle, models/<row>/, into --out
(rows that fit the board deploy with tools.deploy).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from host.boards import BoardProfile, load_board
from host.errors import UserError, output_folder, run_cli
from host.make import augment as augment_mod
from host.make import bundle, checks, degrade, evaluate, nobody, ood, prune, quantize, train
from host.make import card as card_mod
from host.make import data as data_mod
from host.make import model as model_mod

REFERENCE = "tiny_cnn"
DEFAULT_ARCHS = ["tiny_cnn", "squeezenet", "squeezenet_mod", "ds_cnn", "ds_cnn:jitter", "ds_cnn_wide"]
DEFAULT_RATES = [0.25, 0.5, 0.75]
DEFAULT_ROBUST = ["tiny_cnn", "ds_cnn", "ds_cnn_wide"]
DEFAULT_PRUNE_SOURCES = ["tiny_cnn", "tiny_cnn_robust"]
METHODS = ("one-shot", "iterative")
PAPER_SIZE_ORDER = ["squeezenet", "squeezenet_mod", "tiny_cnn"]  # largest first, as in the paper

# The frontier target, measured against the reference row of the same run.
TARGET_MAX_INT8_BYTES = 70_000
TARGET_MAX_ACCURACY_DROP = 0.003
TARGET_SPEEDUP = 2.0


@dataclass
class Candidate:
    name: str  # row label, also the file stem of its .tflite
    kind: str  # "design", "pruned" or "robust"
    arch: str
    augment: str
    prune_method: str | None = None
    prune_rate: float | None = None
    prune_source: str | None = None  # the trained row that was pruned
    filters: dict = field(default_factory=dict)
    fine_tune_epochs: int | None = None  # pruned rows
    train_seconds: float = 0.0


# ---- pure helpers -----------------------------------------------------------------------------------


def pareto_front(points: list[tuple[float, float]], maximize: tuple[bool, bool] = (True, True)) -> list[int]:
    """Indices of the points no other point dominates (at least as good on both axes, better on one).

    Duplicated points are all on the front. NaN coordinates are never on it.
    """
    signs = np.array([1.0 if m else -1.0 for m in maximize])
    values = np.array(points, dtype=float).reshape(-1, 2) * signs
    front = []
    for i, p in enumerate(values):
        if np.isnan(p).any():
            continue
        others = values[~np.isnan(values).any(axis=1)]
        dominated = np.any(np.all(others >= p, axis=1) & np.any(others > p, axis=1))
        if not dominated:
            front.append(i)
    return front


def parse_rates(values: list[str]) -> list[float]:
    if [v.lower() for v in values] == ["none"]:  # as the help says: skip pruning
        return []
    rates = []
    for v in values:
        try:
            rate = float(v)
        except ValueError:
            raise UserError(f"--prune-rates {v!r}: not a number; give fractions such as 0.25 0.5 0.75") from None
        if not 0.0 < rate < 1.0:
            raise UserError(f"--prune-rates {v}: must be between 0 and 1 (exclusive), e.g. 0.5 removes half the filters")
        rates.append(rate)
    return rates


def split_spec(spec: str, default_augment: str) -> tuple[str, str]:
    """'ds_cnn' -> ('ds_cnn', default); 'ds_cnn:jitter' -> ('ds_cnn', 'jitter')."""
    arch, _, mode = spec.partition(":")
    return arch, mode or default_augment


def check_archs(specs: list[str]) -> list[str]:
    for spec in specs:
        arch, mode = split_spec(spec, train.TrainConfig.augment)
        if arch not in model_mod.ARCHITECTURES:
            raise UserError(f"unknown architecture {arch!r}; choose from {', '.join(model_mod.ARCHITECTURES)}")
        if not augment_mod.valid_mode(mode):
            raise UserError(f"{spec!r}: unknown augmentation {mode!r}; choose from {', '.join(train.AUGMENTATIONS)}")
    return specs


def check_degradations(names: list[str]) -> list[str]:
    if not names:
        raise UserError(f"--degradations: name at least one of {', '.join(degrade.DEGRADATIONS)} (leave the option out"
                        " for all of them)")
    unknown = [n for n in names if n not in degrade.DEGRADATIONS]
    if unknown:
        raise UserError(f"unknown degradation {', '.join(map(repr, unknown))}; choose from {', '.join(degrade.DEGRADATIONS)}")
    return names


# ---- measurements -----------------------------------------------------------------------------------

def float32_tflite(model) -> bytes:
    """The float32 .tflite (no quantization) of a Keras model, batch fixed at 1 like host.quantize."""
    import contextlib
    import io
    import warnings

    import keras
    import tensorflow as tf

    from host import tflm

    fixed_input = keras.Input(shape=tuple(model.input_shape[1:]), batch_size=1)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(fixed_input, model(fixed_input)))
    with contextlib.redirect_stdout(io.StringIO()), tflm.quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(converter.convert())


def degraded_accuracy(payload: bytes, labels: np.ndarray, degraded: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, pixels in degraded.items():
        predicted = evaluate.predicted_labels(evaluate.int8_outputs(payload, pixels, progress=False))
        out[name] = float((predicted == labels).mean()) if len(labels) else 0.0
    return out


def measure(candidate: Candidate, model, dataset: data_mod.Dataset, board: BoardProfile,
            degraded: dict[str, np.ndarray], representative: np.ndarray, out: Path, ood_splits: dict, *,
            trained_with: train.TrainConfig, long_run_frames: int, board_key: str) -> dict:
    """Quantize, check and evaluate one trained model, and write it as a deployable bundle in
    out/models/<name>/ (its card as host.build writes one; `long_run_frames` > 0 adds the long
    simulated run of no-face pictures, issue 16); returns its table row (a flat-ish dict)."""
    payload = quantize.quantize(model, representative)
    facts = checks.inspect_model(payload)
    results = checks.run_checks(facts, board)
    metrics = evaluate.evaluate(model, payload, dataset.test, progress=False, labels=dataset.labels)
    macs = model_mod.count_macs(model)
    inference_ms, frame_ms = board.inference_ms(macs), board.frame_ms(macs, dataset.size)
    by_degradation = degraded_accuracy(payload, dataset.test.labels, degraded)
    door = ood.measure(payload, dataset, splits=ood_splits,
                       degraded={n: data_mod.Split(p, dataset.test.labels, dataset.test.groups, dataset.test.paths)
                                 for n, p in degraded.items()})
    card = card_mod.bundle_card(candidate.name, board, facts, macs, int(model.count_params()), metrics, trained_with,
                                dataset, candidate.train_seconds, door, payload)
    card["training"]["recipe"] = "compare"
    if candidate.kind == "pruned":
        card["training"]["prune"] = {"rate": candidate.prune_rate, "method": candidate.prune_method,
                                     "source": candidate.prune_source, "filters": candidate.filters,
                                     "fine_tune_epochs": candidate.fine_tune_epochs}

    def fill(staging: Path) -> bool:
        if long_run_frames:
            card["nobody"] = nobody.card_fields(staging, ood_splits, board_key, macs, long_run_frames)
        return long_run_frames > 0

    bundle_dir = bundle.write(out / "models", candidate.name, payload, dataset.labels, card, fill)
    return {
        **asdict(candidate),
        "params": int(model.count_params()),
        "float32_bytes": len(float32_tflite(model)),
        "int8_bytes": len(payload),
        "macs": macs,
        "arena_bytes": facts.arena_bytes,
        "ops": facts.ops,
        "inference_ms": inference_ms,
        "inference_fps": 1000.0 / inference_ms,
        "counted_ms": card["estimate"]["counted"].get("ms"),  # issue 15, beside the MAC figure
        "frame_ms": frame_ms,
        "frame_fps": 1000.0 / frame_ms,
        "float32_accuracy": metrics["float32"]["accuracy"],
        "int8_accuracy": metrics["int8"]["accuracy"],
        "int8_accuracy_ci95": evaluate.wilson_interval(int(np.trace(metrics["int8"]["confusion_matrix"])), metrics["int8"]["count"]),
        "agreement": metrics["agreement"],
        "float32_per_class": metrics["float32"]["per_class"],
        "int8_per_class": metrics["int8"]["per_class"],
        "int8_confusion_matrix": metrics["int8"]["confusion_matrix"],
        "degraded_int8_accuracy": float(np.mean(list(by_degradation.values()))) if by_degradation else None,
        "degraded": by_degradation,
        "fits": not checks.failures(results),
        "checks": [asdict(c) for c in results],
        "door_threshold": door["threshold"],
        "door_calibration": door["calibration"],
        "out_of_domain": door["sets"],
        "bundle": str(bundle_dir.relative_to(out)),
        "nobody": card.get("nobody"),
    }


# ---- the run ----------------------------------------------------------------------------------------


@dataclass
class CompareConfig:
    archs: list[str]
    prune_rates: list[float]
    prune_methods: list[str]
    robust_archs: list[str]
    prune_sources: list[str]
    epochs: int
    fine_tune_epochs: int
    iterative_steps: int
    degradations: list[str]
    augment: str
    seed: int
    board: str
    limit: int | None
    refit: bool = True
    schedule: str = train.TrainConfig.schedule
    balance: str = train.TrainConfig.balance
    long_runs: bool = True  # each row's long simulated run of no-face pictures (issue 16)


def plan(config: CompareConfig) -> list[Candidate]:
    """Rows in table order: the reference first, designs, robust designs, then pruned rows of each
    --prune-sources row (fine-tuned with that row's augmentation)."""
    default_augment = config.augment
    rows = [Candidate(REFERENCE, "design", REFERENCE, default_augment)]
    for spec in config.archs:
        arch, mode = split_spec(spec, default_augment)
        name = arch if mode == default_augment else f"{arch}_{mode}"
        if name not in {r.name for r in rows}:
            rows.append(Candidate(name, "design" if mode != "robust" else "robust", arch, mode))
    for arch in config.robust_archs:
        if f"{arch}_robust" not in {r.name for r in rows}:
            rows.append(Candidate(f"{arch}_robust", "robust", arch, "robust"))
    trained = {r.name: r for r in rows}
    for source in config.prune_sources:
        if source not in trained:
            raise UserError(f"--prune-sources {source!r}: not a row of this run; choose from {', '.join(trained)}")
        for method in config.prune_methods:
            for rate in config.prune_rates:
                name = f"{source}_pruned{round(rate * 100)}_{method.replace('-', '')}"
                if name in {r.name for r in rows}:  # its model and its table row would be one
                    raise UserError(f"--prune-rates/--prune-methods/--prune-sources: row {name} is asked for twice"
                                    " (rates are named by whole percent); give each once")
                rows.append(Candidate(name, "pruned", trained[source].arch, trained[source].augment, method, rate,
                                      prune_source=source))
    return rows


@dataclass
class SizedData:
    """Everything a row is measured on, decoded for one input size: every row of that size shares it,
    and rows of different sizes see the same pictures (splits do not depend on the size)."""
    dataset: data_mod.Dataset
    representative: np.ndarray
    degraded: dict[str, np.ndarray]
    ood_splits: dict


def sized_data(config: CompareConfig, data_dir, size: int, windows: list, progress: bool) -> SizedData:
    """The data at one input size; `windows` holds the test split's camera windows once made (they do
    not depend on the size)."""
    say = print if progress else (lambda *a, **k: None)
    dataset = data_mod.load_dataset(data_dir, seed=config.seed, limit=config.limit, progress=progress, size=size)
    say(f"data at {size}x{size}: train {len(dataset.train)}, val {len(dataset.val)}, test {len(dataset.test)} images",
        flush=True)
    representative = quantize.representative_pixels(dataset.train, 300, config.seed)
    if not windows:
        windows.append(degrade.camera_windows(dataset.test.paths, progress=progress))
    degraded = {name: degrade.degraded_pixels(windows[0], name, size=size) for name in config.degradations}
    say(f"degraded test sets: {', '.join(config.degradations) or 'none'}", flush=True)
    ood_splits = ood.eval_splits(dataset, limit=config.limit)
    say(f"out-of-domain sets: {', '.join(ood_splits) or 'none'}", flush=True)
    return SizedData(dataset, representative, degraded, ood_splits)


def run(config: CompareConfig, data_dir: Path | list[Path], out: Path, progress: bool = True) -> dict:
    start = time.time()
    board = load_board(config.board)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)
    windows: list = []
    by_size: dict[int, SizedData] = {}

    def data_at(size: int) -> SizedData:
        if size not in by_size:
            by_size[size] = sized_data(config, data_dir, size, windows, progress)
        return by_size[size]

    first = data_at(model_mod.input_size(REFERENCE))
    dataset = first.dataset

    candidates = plan(config)
    sources: dict[str, object] = {}  # trained models that pruned rows start from
    source_configs: dict[str, train.TrainConfig] = {}
    rows = []
    for i, candidate in enumerate(candidates, 1):
        t0 = time.time()
        what = (f"{candidate.prune_method} L1 pruning of {candidate.prune_source} at {candidate.prune_rate:g}, fine-tuning"
                if candidate.kind == "pruned" else f"training {candidate.arch}, augment {candidate.augment}")
        say(f"[{i}/{len(candidates)}] {candidate.name}: {what}", flush=True)
        sized = data_at(model_mod.input_size(candidate.arch))
        if candidate.kind == "pruned":
            tune = prune.fine_tune_like(source_configs[candidate.prune_source], config.fine_tune_epochs, progress)
            if candidate.prune_method == "one-shot":
                result = prune.one_shot(sources[candidate.prune_source], candidate.prune_rate, sized.dataset, tune)
            else:
                result = prune.iterative(sources[candidate.prune_source], candidate.prune_rate, sized.dataset, tune,
                                         config.iterative_steps)
            model, candidate.filters = result.model, result.filters
            trained_with = source_configs[candidate.prune_source]  # the source's training; the card adds the pruning
            candidate.fine_tune_epochs = config.fine_tune_epochs
        else:
            trained_with = train.TrainConfig(arch=candidate.arch, epochs=config.epochs, augment=candidate.augment,
                                             seed=config.seed, refit=config.refit, schedule=config.schedule,
                                             balance=config.balance)
            trained = train.train(sized.dataset, trained_with, verbose=progress)
            model = trained.model
            if candidate.name in config.prune_sources:
                sources[candidate.name], source_configs[candidate.name] = model, trained_with
        candidate.train_seconds = round(time.time() - t0, 1)
        row = measure(candidate, model, sized.dataset, board, sized.degraded, sized.representative, out, sized.ood_splits,
                      trained_with=trained_with, board_key=config.board,
                      long_run_frames=nobody.frames_for(config.limit) if config.long_runs else 0)
        rows.append(row)
        say(f"[{i}/{len(candidates)}] {candidate.name}: int8 acc {row['int8_accuracy']:.4f}, degraded {_fmt(row['degraded_int8_accuracy'], '.4f')}, "
            f"{row['int8_bytes']:,} B, {row['macs']:,} MACs, {row['inference_fps']:.0f}/{row['frame_fps']:.0f} FPS, "
            f"{'fits' if row['fits'] else 'does NOT fit'} {board.name} ({time.time() - t0:.0f} s)", flush=True)

    report = {
        "format": 1,
        "board": board.name,
        "config": asdict(config),
        "data": {"sets": [r.name for r in dataset.roots], "fingerprint": dataset.fingerprint, "counts": dataset.counts(),
                 "near_duplicates_of_test_dropped": len(dataset.dropped_near_duplicates)},
        "labels": dataset.labels,
        "degradations": {n: degrade.DEGRADATIONS[n].description for n in config.degradations},
        "rows": rows,
        "pareto": {
            "accuracy_vs_inference_fps": [rows[i]["name"] for i in pareto_front([(r["inference_fps"], r["int8_accuracy"]) for r in rows])],
            "accuracy_vs_int8_bytes": [rows[i]["name"] for i in pareto_front([(r["int8_bytes"], r["int8_accuracy"]) for r in rows], (False, True))],
        },
        "targets": targets(rows),
        "paper_size_order": size_order(rows),
        "seconds": round(time.time() - start, 1),
    }
    write_outputs(report, out)
    say(f"wrote {out}/compare.md, compare.json, compare.csv, compare.png ({report['seconds']:.0f} s)")
    return report


def targets(rows: list[dict]) -> dict:
    """Which rows meet the issue's frontier target against the reference row."""
    ref = next((r for r in rows if r["name"] == REFERENCE), None)
    if ref is None:
        return {}
    result = {"reference_int8_accuracy": ref["int8_accuracy"], "reference_inference_fps": ref["inference_fps"],
              "reference_frame_fps": ref["frame_fps"], "max_int8_bytes": TARGET_MAX_INT8_BYTES,
              "max_accuracy_drop": TARGET_MAX_ACCURACY_DROP, "speedup": TARGET_SPEEDUP, "rows": {}}
    for r in rows:
        if r is ref:
            continue
        small = r["int8_bytes"] <= TARGET_MAX_INT8_BYTES
        accurate = r["int8_accuracy"] >= ref["int8_accuracy"] - TARGET_MAX_ACCURACY_DROP - 1e-12
        fast_inference = r["inference_fps"] >= TARGET_SPEEDUP * ref["inference_fps"]
        fast_loop = r["frame_fps"] >= TARGET_SPEEDUP * ref["frame_fps"]
        result["rows"][r["name"]] = {
            "small": small, "accurate": accurate, "fits": r["fits"],
            "inference_speedup": r["inference_fps"] / ref["inference_fps"],
            "frame_speedup": r["frame_fps"] / ref["frame_fps"],
            "meets_inference_target": small and accurate and fast_inference and r["fits"],
            "meets_whole_loop_target": small and accurate and fast_loop and r["fits"],
            "beats_reference": r["int8_accuracy"] > ref["int8_accuracy"] and r["inference_fps"] > ref["inference_fps"],
        }
    return result


def size_order(rows: list[dict]) -> dict:
    by_name = {r["name"]: r for r in rows}
    present = [n for n in PAPER_SIZE_ORDER if n in by_name]
    measured = sorted(present, key=lambda n: -by_name[n]["int8_bytes"])
    by_accuracy = sorted(present, key=lambda n: -by_name[n]["int8_accuracy"])
    return {"paper": present, "measured_int8_bytes": measured, "matches_paper": measured == present,
            "measured_int8_accuracy": by_accuracy}


# ---- outputs ----------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "name", "kind", "arch", "augment", "prune_method", "prune_rate", "params", "float32_bytes", "int8_bytes", "macs",
    "arena_bytes", "inference_ms", "counted_ms", "inference_fps", "frame_ms", "frame_fps", "float32_accuracy", "int8_accuracy",
    "degraded_int8_accuracy", "fits", "train_seconds",
]


def flat_row(row: dict) -> dict:
    flat = {k: row[k] for k in CSV_COLUMNS}
    for kind in ("float32", "int8"):
        for label, c in row[f"{kind}_per_class"].items():
            for metric in ("precision", "recall", "f1"):
                flat[f"{kind}_{label}_{metric}"] = c[metric]
    for name, acc in row["degraded"].items():
        flat[f"int8_{name}_accuracy"] = acc
    flat["door_threshold"] = row.get("door_threshold")
    run = (row.get("nobody") or {}).get("long_run") or {}
    flat["nobody_openings"], flat["nobody_frames"], flat["bundle"] = run.get("openings"), run.get("frames"), row.get("bundle")
    for name, m in (row.get("out_of_domain") or {}).items():
        for key in ("balanced_accuracy", "unmasked_admitted", "masked_admitted", "no_face_admitted"):
            flat[f"ood_{name.replace(' ', '_')}_{key}"] = m[key]
    flat["failed_checks"] = "; ".join(c["name"] for c in row["checks"] if not c["ok"])
    return flat


def write_outputs(report: dict, out: Path) -> None:
    (out / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    flats = [flat_row(r) for r in report["rows"]]
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(flats[0]) if flats else CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(flats)
    (out / "compare.md").write_text(markdown(report))
    plot(report, out / "compare.png")


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown(report: dict) -> str:
    rows = report["rows"]
    labels = report.get("labels") or data_mod.LABELS
    head = ["model", "params", "f32 B", "int8 B", "MACs", "arena B", "inf ms", "counted ms", "inf FPS", "loop FPS",
            "f32 acc", "int8 acc (95% CI)"]
    head += [f"{label} P/R/F1 (int8)" for label in labels] + ["degraded int8 acc", f"fits {report['board']}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], f"{r['params']:,}", f"{r['float32_bytes']:,}", f"{r['int8_bytes']:,}", f"{r['macs']:,}",
                 f"{r['arena_bytes']:,}", f"{r['inference_ms']:.1f}",
                 "-" if r.get("counted_ms") is None else f"{r['counted_ms']:.1f}", f"{r['inference_fps']:.0f}", f"{r['frame_fps']:.0f}",
                 f"{r['float32_accuracy']:.4f}",
                 f"{r['int8_accuracy']:.4f} ({r['int8_accuracy_ci95'][0]:.3f}-{r['int8_accuracy_ci95'][1]:.3f})"]
        for label in labels:
            c = r["int8_per_class"][label]
            cells.append(f"{c['precision']:.3f}/{c['recall']:.3f}/{c['f1']:.3f}")
        cells.append(_fmt(r["degraded_int8_accuracy"], ".4f"))
        failed = [c["name"] for c in r["checks"] if not c["ok"]]
        cells.append("yes" if r["fits"] else "no: " + ", ".join(failed))
        lines.append("| " + " | ".join(cells) + " |")
    degradations = list(report["degradations"])
    if degradations:
        lines += ["", "int8 accuracy under each degradation (test split, TFLM):", "",
                  "| model | clean | " + " | ".join(degradations) + " | mean |", "|" + "---|" * (len(degradations) + 3)]
        for r in rows:
            cells = [r["name"], f"{r['int8_accuracy']:.4f}"] + [f"{r['degraded'][d]:.4f}" for d in degradations]
            lines.append("| " + " | ".join(cells + [_fmt(r["degraded_int8_accuracy"], ".4f")]) + " |")
    ood_names = list(rows[0].get("out_of_domain") or {}) if rows else []
    if ood_names:
        lines += ["", "Out-of-domain door figures (int8, TFLM), each row at its own door threshold, chosen on "
                  f"{rows[0]['door_calibration']} for <= 1% unmasked admitted: balanced accuracy / unmasked admitted /"
                  " masked admitted / no-face admitted, in %:", "",
                  "| model | door threshold | " + " | ".join(ood_names) + " | door openings, nobody there | bundle |",
                  "|" + "---|" * (len(ood_names) + 4)]
        for r in rows:
            cells = [r["name"], f"{r['door_threshold']:.3f}"]
            for n in ood_names:
                m = r["out_of_domain"][n]
                cells.append(" / ".join(_fmt(None if m[k] is None else m[k] * 100, ".1f") for k in
                                        ("balanced_accuracy", "unmasked_admitted", "masked_admitted", "no_face_admitted")))
            run = (r.get("nobody") or {}).get("long_run")
            cells.append(f"{run['openings']} over {run['frames']:,} frames" if run else "-")
            cells.append(r.get("bundle") or "-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Door openings: firmware/main.py on the simulated board over the no-face pictures only (each held"
                     " 1-20 frames), the row's threshold and debounce, presence gate on. Each bundle deploys with"
                     " `python -m tools.deploy --bundle <out>/<bundle>`.")
    for r in rows:
        plain = next((p for p in rows if p["arch"] == r["arch"] and p["kind"] == "design"), None)
        if r["kind"] == "robust" and plain and degradations:
            lines.append(f"- {r['name']} vs {plain['name']}: degraded mean {plain['degraded_int8_accuracy']:.4f} -> "
                         f"{r['degraded_int8_accuracy']:.4f}, clean {plain['int8_accuracy']:.4f} -> {r['int8_accuracy']:.4f}")
    pareto = report["pareto"]
    lines += ["", f"Pareto front, int8 accuracy vs inference FPS: {', '.join(pareto['accuracy_vs_inference_fps'])}",
              f"Pareto front, int8 accuracy vs int8 bytes: {', '.join(pareto['accuracy_vs_int8_bytes'])}"]
    order = report.get("paper_size_order") or {}
    if order.get("paper"):
        lines.append(f"Size order (int8 bytes, largest first): {' > '.join(order['measured_int8_bytes'])}"
                     f" ({'matches' if order['matches_paper'] else 'differs from'} the paper's {' > '.join(order['paper'])});"
                     f" int8 accuracy order: {' > '.join(order['measured_int8_accuracy'])}")
    t = report.get("targets") or {}
    if t:
        met_inf = [n for n, v in t["rows"].items() if v["meets_inference_target"]]
        met_loop = [n for n, v in t["rows"].items() if v["meets_whole_loop_target"]]
        lines += ["", f"Target: int8 <= {t['max_int8_bytes']:,} B, int8 accuracy >= reference "
                  f"{t['reference_int8_accuracy']:.4f} - {t['max_accuracy_drop'] * 100:.1f} points, >= {t['speedup']:g}x FPS, fits:",
                  f"- with inference-only FPS (reference {t['reference_inference_fps']:.0f}): {', '.join(met_inf) or 'none'}",
                  f"- with whole-loop FPS (reference {t['reference_frame_fps']:.0f}): {', '.join(met_loop) or 'none'}"]
    c = report["config"]
    lines += ["", f"Training: {c['epochs']} epochs (pruned rows: {c['fine_tune_epochs']} fine-tuning epochs,"
              f" iterative in {c['iterative_steps']} steps), schedule {c['schedule']},"
              f" {'refit on train + validation' if c['refit'] else 'best validation epoch'}, augment {c['augment']},"
              f" seed {c['seed']}; "
              f"FPS estimated from MACs with {report['board']}'s MAC/cycle figure; loop FPS adds camera, scaling and logging."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    from host.make import plots  # sets the Agg backend

    plt = plots.plt
    rows = report["rows"]
    colors = {"design": "tab:blue", "pruned": "tab:orange", "robust": "tab:green"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    panels = [("inference_fps", "estimated inference FPS on the board (log)", (True, True), "accuracy_vs_inference_fps"),
              ("int8_bytes", "int8 model bytes (log)", (False, True), "accuracy_vs_int8_bytes")]
    for ax, (key, xlabel, maximize, _) in zip(axes, panels):
        xs = np.array([r[key] for r in rows], dtype=float)
        ys = np.array([r["int8_accuracy"] for r in rows]) * 100
        for kind, color in colors.items():
            idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
            if idx:
                fits = [i for i in idx if rows[i]["fits"]]
                nofit = [i for i in idx if not rows[i]["fits"]]
                ax.scatter(xs[fits], ys[fits], c=color, label=kind, zorder=3)
                if nofit:
                    ax.scatter(xs[nofit], ys[nofit], facecolors="none", edgecolors=color, label=f"{kind} (does not fit)", zorder=3)
        front = sorted(pareto_front(list(zip(xs, ys)), maximize), key=lambda i: xs[i])
        ax.plot(xs[front], ys[front], "k--", lw=1, label="Pareto front", zorder=2)
        ax.scatter(xs[front], ys[front], s=140, facecolors="none", edgecolors="k", zorder=4)
        for i, r in enumerate(rows):
            ax.annotate(r["name"], (xs[i], ys[i]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("int8 accuracy on test (%)")
        ax.grid(alpha=0.3, which="both")
    ref = next((r for r in rows if r["name"] == REFERENCE), None)
    if ref:
        axes[0].axvline(ref["inference_fps"] * TARGET_SPEEDUP, color="grey", ls=":", lw=1, label="2x reference FPS")
        axes[1].axvline(TARGET_MAX_INT8_BYTES, color="grey", ls=":", lw=1, label=f"{TARGET_MAX_INT8_BYTES:,} B")
        for ax in axes:
            ax.axhline((ref["int8_accuracy"] - TARGET_MAX_ACCURACY_DROP) * 100, color="red", ls=":", lw=1,
                       label="reference - 0.3 points")
    axes[0].set_title("int8 accuracy vs speed")
    axes[1].set_title("int8 accuracy vs size")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"tinymask model comparison on {report['board']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- command line -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                        help="image folder(s), combined as host.build does (default: host.build's)")
    parser.add_argument("--out", type=Path, required=True, help="folder for compare.{json,csv,md,png} and models/")
    parser.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS, metavar="ARCH",
                        help=f"designs to train, ARCH or ARCH:AUGMENT to override --augment for that row (the reference"
                             f" {REFERENCE} is always included; default: %(default)s)")
    parser.add_argument("--prune-rates", nargs="*", default=[str(r) for r in DEFAULT_RATES], metavar="RATE",
                        help="fractions of filters to remove from the reference (default: %(default)s; none to skip)")
    parser.add_argument("--prune-methods", nargs="*", default=list(METHODS), choices=METHODS,
                        help="pruning schedules (default: %(default)s)")
    parser.add_argument("--robust-archs", nargs="*", default=DEFAULT_ROBUST, metavar="ARCH",
                        help="designs also trained with --augment robust (default: %(default)s)")
    parser.add_argument("--prune-sources", nargs="*", default=None, metavar="ROW",
                        help="trained rows to prune (default: tiny_cnn, and tiny_cnn_robust when tiny_cnn is in --robust-archs)")
    parser.add_argument("--epochs", type=int, default=train.TrainConfig.epochs, help="training epochs per design (default: %(default)s)")
    parser.add_argument("--fine-tune-epochs", type=int, default=15, help="fine-tuning epochs per pruned model (default: %(default)s)")
    parser.add_argument("--iterative-steps", type=int, default=3, help="steps of iterative pruning (default: %(default)s)")
    parser.add_argument("--degradations", nargs="*", default=list(degrade.DEGRADATIONS), metavar="NAME",
                        help=f"test-time degradations (default: all: {', '.join(degrade.DEGRADATIONS)})")
    parser.add_argument("--augment", default=train.TrainConfig.augment, metavar="MODE",
                        help="augmentation of the non-robust rows (default: host.train's, %(default)s)")
    parser.add_argument("--seed", type=int, default=train.TrainConfig.seed, help="seed (default: %(default)s)")
    parser.add_argument("--no-refit", dest="refit", action="store_false",
                        help="train and fine-tune on train only, keeping the best validation epoch (default: refit on"
                             " train + validation and keep the last epoch, as host.build does)")
    parser.add_argument("--schedule", default=train.TrainConfig.schedule, choices=train.SCHEDULES,
                        help="learning-rate schedule of every trained row, as host.train's (default: %(default)s)")
    parser.add_argument("--balance", default=train.TrainConfig.balance, choices=train.BALANCES,
                        help="what each training epoch draws, as host.train's (default: %(default)s)")
    parser.add_argument("--board", default="openmv_h7", help="board profile (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split and class (quick runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--no-long-runs", dest="long_runs", action="store_false",
                        help="skip each row's long simulated run of no-face pictures (20-50 s a row here)")
    args = parser.parse_args(argv)
    if not augment_mod.valid_mode(args.augment):
        raise UserError(f"--augment {args.augment!r}: choose one of {', '.join(train.AUGMENTATIONS)} or a +-joined list")
    if args.epochs < 1 or args.fine_tune_epochs < 0 or args.iterative_steps < 1:
        raise UserError("--epochs and --iterative-steps must be at least 1, --fine-tune-epochs at least 0")
    config = CompareConfig(
        archs=check_archs(args.archs), prune_rates=parse_rates(args.prune_rates), prune_methods=args.prune_methods,
        robust_archs=check_archs(args.robust_archs), epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs,
        iterative_steps=args.iterative_steps, degradations=check_degradations(args.degradations),
        augment=args.augment, seed=args.seed, board=args.board, limit=args.limit, refit=args.refit,
        schedule=args.schedule, balance=args.balance, long_runs=args.long_runs,
        prune_sources=args.prune_sources if args.prune_sources is not None
        else [s for s in DEFAULT_PRUNE_SOURCES if s == REFERENCE or s.removesuffix("_robust") in args.robust_archs],
    )
    load_board(config.board)  # fail on a bad board or plan before any training
    for arch in {c.arch for c in plan(config) if c.kind == "pruned"}:
        prune.prune_by_rate(model_mod.build(arch), 0.5)  # a UserError now if that design cannot be pruned
    output_folder(args.out)
    run(config, args.data or data_mod.default_data_dirs(), args.out, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
