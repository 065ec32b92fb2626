"""`tinymask seeds BUNDLE...`: one design's figures over several seeds, each bundle a row and their
mean (sd) under them.

Training is noisy: one seed's figures say little, and the best of several says less. Build the same
recipe with a few seeds (`tinymask build --seed S --out runs/NAME_S`), then pool the cards here. The
standard deviation is the sample one (n - 1), so it is honest for three seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from host.errors import UserError
from host.make import bundle

CARD = bundle.file_names("")["card"]

# What the training section must share for the pooled rows to be one design over seeds.
SAME_DESIGN = ("arch", "recipe", "epochs", "learning_rate", "augment", "balance", "dropout", "doorframe", "doorframe_shrink",
               "mixup", "ema", "distill", "distill_alpha", "distill_temperature", "prune", "none_share", "none_zoom",
               "none_jigsaw", "hard_negatives", "focal")
# Options added after cards were first written: a card without one was trained without it.
ADDED_LATER = {"none_zoom": 0.0, "none_jigsaw": 0.0, "hard_negatives": 0.0, "focal": 0.0}


@dataclass(frozen=True)
class Figure:
    column: str
    read: Callable[[dict], float | None]
    kind: str  # "percent", "fraction", "count", "ms", "seconds"


def nested(*keys: str) -> Callable[[dict], float | None]:
    def read(card: dict):
        value = card
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 10**15 or not math.isfinite(value):
            return None  # a damaged field reads as missing: shown as "-", never a crash
        return value
    return read


def section(card: dict, key: str) -> dict:
    """card[key] when it is an object, else {} (a damaged card is shown, not a traceback)."""
    value = card.get(key)
    return value if isinstance(value, dict) else {}


def build_seconds(card: dict) -> float | None:
    # cards from before build_seconds was recorded give the training time alone
    return nested("training", "build_seconds")(card) or nested("training", "seconds")(card)


FIGURES = (
    Figure("v1 test acc", nested("metrics", "int8", "accuracy"), "percent"),
    Figure("OOD bal. acc", nested("out_of_domain", "sets", "facemask-extra", "balanced_accuracy"), "percent"),
    Figure("threshold", nested("door_threshold"), "fraction"),
    Figure("unmasked adm.", nested("door_expected", "unmasked_admitted"), "percent"),
    Figure("masked adm.", nested("door_expected", "masked_admitted"), "percent"),
    Figure("door-framed unmasked", nested("door_expected", "door_framed", "unmasked_admitted"), "percent"),
    Figure("door-framed masked", nested("door_expected", "door_framed", "masked_admitted"), "percent"),
    Figure("no-face adm.", nested("door_expected", "no_face_admitted"), "percent"),
    Figure("degraded mean", nested("out_of_domain", "degraded_mean"), "percent"),
    Figure("openings, nobody there", nested("nobody", "long_run", "openings"), "count"),
    Figure("int8 bytes", nested("model_bytes"), "count"),
    Figure("est. ms (MAC)", nested("estimate", "inference_ms"), "ms"),
    Figure("est. ms (counted)", nested("estimate", "counted", "ms"), "ms"),
    Figure("build", build_seconds, "seconds"),
)


def find_card(path: Path) -> Path:
    """A bundle folder, its card, or a build's --out folder holding exactly one bundle."""
    if path.is_file() and path.name == CARD:
        return path
    if (path / CARD).is_file():
        return path / CARD
    if not path.is_dir():
        raise UserError(f"{path}: no such bundle folder; give a folder that holds {CARD} (e.g. runs/NAME/tinymask)")
    found = sorted(p for p in path.glob(f"*/{CARD}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"{path}: holds no {CARD}; give a bundle folder (a finished tinymask build's --out)")
    raise UserError(f"{path}: holds {len(found)} bundles ({', '.join(p.parent.name for p in found)}); name one of them")


def read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable model card ({exc}); rebuild that bundle") from None
    if not isinstance(card, dict):
        raise UserError(f"{path}: not a model card (a JSON object is expected); rebuild that bundle")
    return card


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def show(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "percent":
        return f"{100 * value:.2f}%"
    if kind == "fraction":
        return f"{value:.3f}"
    if kind == "ms":
        return f"{value:.2f}"
    if kind == "seconds":
        return f"{value:.0f} s"
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def pooled(values: list[float | None], kind: str) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, sd = mean_sd(present)
    text = show(mean, kind)
    if sd is not None:
        spread = show(sd, kind).removesuffix("%").removesuffix(" s")
        text += f" ({spread})"
    if len(present) < len(values):
        text += f" [{len(present)} of {len(values)}]"
    return text


def design_differences(cards: list[dict]) -> list[str]:
    differ = []
    for key in SAME_DESIGN:
        seen = {json.dumps(section(c, "training").get(key, ADDED_LATER.get(key)), sort_keys=True) for c in cards}
        if len(seen) > 1:
            differ.append(key)
    if len({json.dumps(c.get("model_bytes")) for c in cards}) > 1:
        differ.append("model_bytes")
    if len({json.dumps(section(c, "door_expected").get("target_no_face_admitted")) for c in cards}) > 1:
        differ.append("the threshold rule (--max-no-face)")
    return differ


def table(names: list[str], cards: list[dict]) -> str:
    header = ["bundle", "seed", *(f.column for f in FIGURES)]
    rows = [[name, str(section(card, "training").get("seed", "-")), *(show(f.read(card), f.kind) for f in FIGURES)]
            for name, card in zip(names, cards)]
    rows.append([f"mean (sd), {len(cards)} bundles", "", *(pooled([f.read(c) for c in cards], f.kind) for f in FIGURES)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * len(FIGURES)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinymask seeds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE",
                        help="bundle folders (or a build's --out folder holding one bundle)")
    parser.add_argument("--json", action="store_true", help="print the per-bundle figures and their mean and sd as JSON")
    args = parser.parse_args(argv)
    paths = [find_card(p) for p in args.bundles]
    if len(set(p.resolve() for p in paths)) < len(paths):
        raise UserError("the same bundle is named twice: each seed counts once")
    cards = [read_card(p) for p in paths]
    names = [str(p.parent) for p in paths]
    first: dict[str, str] = {}
    for name, card in zip(names, cards):
        sha = card.get("sha256")
        if not isinstance(sha, str):
            continue
        if sha in first:
            raise UserError(f"{first[sha]} and {name} hold the same model (sha256 {sha[:12]}...): each seed counts once")
        first[sha] = name
    differ = design_differences(cards)
    if args.json:
        out = {"bundles": {n: {f.column: f.read(c) for f in FIGURES} for n, c in zip(names, cards)}, "mean": {}, "sd": {},
               "differ": differ}
        for f in FIGURES:
            present = [v for v in (f.read(c) for c in cards) if v is not None]
            if present:
                out["mean"][f.column], out["sd"][f.column] = mean_sd(present)
        print(json.dumps(out, indent=2))
        return 0
    print(table(names, cards))
    if differ:
        print(f"\nnote: these bundles differ in {', '.join(differ)}: their mean is not one design over seeds")
    return 0
