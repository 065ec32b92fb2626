"""Which training ingredients move the out-of-domain door figures: a reduced-epoch screening.

    python benchmarks/bench_ingredients.py [--epochs 12] [--seeds 1337 7 42] [--hold-out-source fm12k_train]
        [--out runs/ingredients.jsonl] RECIPE [RECIPE ...]

A RECIPE is `name=augment,balance[,arch][,faces]`: host.train's --augment and --balance, the design
(default door_cnn), and `faces` to train without the scenes-negative images (two classes). The data
(facemask-v1, facemask-extra, scenes-negative) is loaded once; the held-out source (default:
facemask-extra's fm12k_train, the one real-photo source with both classes) never trains and is the
out-of-domain set the door threshold is calibrated on (<= 1% unmasked admitted). Each run is
trained without the refit (one cosine run of --epochs, best validation epoch), quantized to int8,
and measured on TFLM: facemask-v1 test accuracy, OOD balanced accuracy, masked admitted at the
calibrated threshold, unmasked admitted at 0.8 (the old door default), no-face frames admitted
(scenes-negative test), and the degraded v1 test mean. Prints one line per run and mean (sd) per
recipe; every run is also appended to --out as one JSON line. A measurement: never asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from host.errors import positive_int, run_script
from host.framing import real_test_scenes
from host.make import data as data_mod
from host.make import evaluate, ood, quantize, train

KEYS = [("v1_acc", "v1 acc"), ("ood_bal_acc", "OOD bal.acc"), ("masked_adm", "masked adm@t"),
        ("unmasked_adm_08", "unmasked adm@0.8"), ("no_face_adm", "no-face adm@t"), ("degraded_mean", "degraded"),
        ("door_unmasked_adm", "door-framed unm.@t"), ("door_masked_adm", "door-framed msk@t"),
        ("both_masked_adm", "masked adm@t2"), ("both_door_masked_adm", "door-framed msk@t2")]


def parse_recipe(text: str) -> dict:
    name, _, spec = text.partition("=")
    parts = spec.split(",")
    if not name or len(parts) < 2:
        raise SystemExit(f"recipe {text!r}: expected name=augment,balance[,arch][,faces]")
    arch = next((p for p in parts[2:] if p != "faces"), "door_cnn")
    return {"name": name, "augment": parts[0], "balance": parts[1], "arch": arch, "faces_only": "faces" in parts[2:]}


def faces_only(dataset: data_mod.Dataset) -> data_mod.Dataset:
    """The same data without the `none` class in train and validation (a two-class model)."""
    keep = [np.nonzero(s.labels != 2)[0] for s in (dataset.train, dataset.val)]
    return replace(dataset, train=dataset.train.subset(keep[0]), val=dataset.val.subset(keep[1]),
                   held_out={k: v for k, v in dataset.held_out.items() if (v.labels != 2).any()})


def run_one(recipe: dict, seed: int, epochs: int, dataset, negatives, degraded, ood_name, framed) -> dict:
    data = faces_only(dataset) if recipe["faces_only"] else dataset
    config = train.TrainConfig(arch=recipe["arch"], epochs=epochs, augment=recipe["augment"], seed=seed,
                               refit=False, balance=recipe["balance"])
    start = time.time()
    trained = train.train(data, config, verbose=False)
    payload = quantize.quantize(trained.model, quantize.representative_pixels(data.train, 300, seed))
    test = ood.score_split(payload, data.test, "v1", "")
    held = ood.score_split(payload, dataset.held_out[ood_name], ood_name, "")
    neg = ood.score_split(payload, negatives, "negatives", "")
    threshold = ood.calibrate(held.scores, held.labels)
    at_t = ood.door_figures(held.scores, held.labels, threshold)
    framed_scored = ood.score_split(payload, framed, "door-framed", "")
    at_door = ood.door_figures(framed_scored.scores, framed_scored.labels, threshold)
    # t2: calibrated on the out-of-domain faces close up and door-framed together (<= 1% unmasked each)
    both_t = max(threshold, ood.calibrate(framed_scored.scores, framed_scored.labels))
    degraded_acc = [float((evaluate.predicted_labels(ood.score_split(payload, s, n, "").outputs) == s.labels).mean())
                    for n, s in degraded.items()]
    return {
        "recipe": recipe["name"], **recipe, "seed": seed, "epochs": epochs, "threshold": threshold,
        "v1_acc": float((evaluate.predicted_labels(test.outputs) == test.labels).mean()),
        "ood_bal_acc": ood.balanced_accuracy(held.labels, evaluate.predicted_labels(held.outputs), 2),
        "masked_adm": at_t["masked_admitted"], "unmasked_adm": at_t["unmasked_admitted"],
        "unmasked_adm_08": ood.door_figures(held.scores, held.labels, 0.8)["unmasked_admitted"],
        "no_face_adm": ood.door_figures(neg.scores, neg.labels, threshold)["no_face_admitted"],
        "degraded_mean": float(np.mean(degraded_acc)), "int8_bytes": len(payload),
        "door_unmasked_adm": at_door["unmasked_admitted"], "door_masked_adm": at_door["masked_admitted"],
        "threshold_both": both_t,
        "both_masked_adm": ood.door_figures(held.scores, held.labels, both_t)["masked_admitted"],
        "both_door_masked_adm": ood.door_figures(framed_scored.scores, framed_scored.labels, both_t)["masked_admitted"],
        "seconds": round(time.time() - start, 1),
    }


def print_table(results: dict[str, list[dict]], title: str) -> None:
    print(f"\n{title}")
    print(f"{'recipe':24}" + "".join(f"{label:>20}" for _, label in KEYS) + "   threshold t2  int8 B")
    for name, rows in results.items():
        cells = []
        for k, _ in KEYS:
            values = [r[k] * 100 for r in rows if r.get(k) is not None]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):7.2f} ({sd:4.2f})" if values else "-")
        t2 = [r["threshold_both"] for r in rows if "threshold_both" in r]
        label = f"{name} [{len(rows)}x{rows[0]['epochs']}]"
        print(f"{label:24}" + "".join(f"{c:>20}" for c in cells)
              + (f"   {statistics.mean(t2):.3f}" if t2 else "       -") + f"  {rows[0]['int8_bytes']:,}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*")
    parser.add_argument("--summary", action="store_true",
                        help="train nothing: print mean (sd) per recipe of every run already in --out")
    parser.add_argument("--epochs", type=positive_int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 7, 42])
    parser.add_argument("--hold-out-source", default="fm12k_train")
    parser.add_argument("--limit", type=positive_int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/ingredients.jsonl"))
    args = parser.parse_args()
    if args.summary:
        rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
        by_recipe: dict[str, list[dict]] = {}
        for row in rows:
            by_recipe.setdefault(row["recipe"], []).append(row)
        print_table(by_recipe, f"{args.out}: {len(rows)} runs; seeds and epochs per recipe in brackets")
        return 0
    if not args.recipes:
        parser.error("give at least one RECIPE, or --summary")
    recipes = [parse_recipe(r) for r in args.recipes]
    for r in recipes:
        train.TrainConfig(augment=r["augment"], balance=r["balance"], arch=r["arch"])  # refuse bad ones now
    dataset = data_mod.load_dataset(data_mod.shared_sets(), limit=args.limit, progress=False,
                                    hold_out_sources=(args.hold_out_source,))
    negatives = dataset.held_out["scenes-negative"]
    ood_name = "facemask-extra"
    print(f"train {len(dataset.train)}, val {len(dataset.val)}; OOD {ood_name} test with {args.hold_out_source} held out:"
          f" {dataset.counts()['held_out:' + ood_name]}; negatives test {len(negatives)}", flush=True)
    degraded = ood.degraded_splits(dataset.test)
    scenes = real_test_scenes(data_mod.shared_sets()[-1])
    framed = data_mod.Split.concat(ood.door_framed_split(dataset.held_out[ood_name], scenes),
                                   ood.door_framed_split(dataset.test, scenes))
    print(f"door-framed faces (OOD + v1 test, 40-70% of the window in {len(scenes)} real test scenes): {len(framed)}",
          flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for recipe in recipes:
        for seed in args.seeds:
            row = run_one(recipe, seed, args.epochs, dataset, negatives, degraded, ood_name, framed)
            results.setdefault(recipe["name"], []).append(row)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{recipe['name']:18} seed {seed:5}: " + "  ".join(f"{label} {row[k] * 100:.2f}" for k, label in KEYS)
                  + f"  t={row['threshold']:.3f} t2={row['threshold_both']:.3f}  {row['int8_bytes']:,} B  {row['seconds']:.0f} s", flush=True)
    print_table(results, f"mean (sd) over seeds {args.seeds}, {args.epochs} epochs, no refit,"
                         f" OOD = {args.hold_out_source} held out")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
