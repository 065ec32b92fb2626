"""`tinymask calibrate`: measure an existing bundle out of domain and (with --write) store its door
threshold and expected rates in its card, without retraining.

    tinymask calibrate [--bundle models/tinymask] [--data DIR ...] [--eval-data DIR ...] [--max-no-face SHARE] [--write]

The same measure as the build's (host/make/ood.py): the out-of-domain sets the bundle's data did not
train on, their door-framed faces, the degraded test, and the threshold for <= 1% unmasked admitted
close up and door-framed; and the long run of no-face pictures on the simulated board
(host/make/nobody.py). `--data` names the folders the bundle was trained on (default: the shared
sets its card names, as the reference's three), so that they are not measured as out of domain;
their test split is the one degraded. `--max-no-face 0.02` asks for a stricter door: the lowest threshold that also
admits at most 2% of the no-face pictures (the long run is simulated at it). The card is rewritten
atomically; the model file and its sha256 are untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from host.errors import UserError
from host.make import bundle as bundle_mod
from host.make import checks, nobody, ood
from host.make import data as data_mod

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "tinymask"


def data_dirs_for(card: dict) -> list[Path]:
    """The folders a bundle trained on, when --data does not say: the shared sets its card names
    (`data.sets`) when all of them are here, else $TINYMASK_DATA, else facemask-v1. The label check
    in `calibrate` catches a wrong guess."""
    data = card.get("data")
    sets = data.get("sets") if isinstance(data, dict) else None
    # a set's folder name, never a path: a card cannot send the measure outside the shared sets
    plain = isinstance(sets, list) and all(isinstance(n, str) and n not in ("", ".", "..") and "/" not in n
                                           and "\\" not in n for n in sets)
    named = [data_mod.SHARED_DATASETS / name for name in sets] if plain else []
    if named and all(d.is_dir() for d in named):
        return named
    return data_mod.default_data_dirs()


def calibrate(bundle_dir: Path, data_dirs: list[Path] | None = None, eval_dirs=None, limit: int | None = None,
              progress: bool = True, max_no_face: float | None = None) -> tuple[dict, dict]:
    """(the bundle's card, the door measure of its model)."""
    card, payload = bundle_mod.load_model(bundle_dir)
    size = checks.input_size(payload, bundle_dir)  # every picture at the bundle's own input size
    given = data_dirs is not None
    data_dirs = data_dirs or data_dirs_for(card)
    dataset = data_mod.load_dataset(data_dirs, limit=limit, progress=progress, size=size)
    if dataset.labels != card.get("labels"):
        source = "--data gives" if given else f"the folders its card names ({', '.join(str(d) for d in data_dirs)}) give"
        raise UserError(f"{bundle_dir} classifies {card.get('labels')} but {source} {dataset.labels};"
                        " pass the folders the bundle was trained on with --data")
    splits = ood.eval_splits(dataset, eval_dirs, limit)
    door = ood.measure(payload, dataset, progress=progress, splits=splits, max_no_face=max_no_face)
    # the long run at the threshold just measured, which --write stores, not the card's old one
    door["nobody"] = nobody.card_fields(bundle_dir, splits, card.get("board", "openmv_h7"), int(card.get("macs") or 0),
                                        nobody.frames_for(limit), threshold=door["threshold"])
    return card, door


def write_card(bundle_dir: Path, card: dict) -> None:
    path = bundle_dir / "model_card.json"
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinymask calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REFERENCE, help="bundle folder (default: models/tinymask)")
    parser.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                        help="the folders the bundle was trained on (default: the shared sets its card names, else"
                             " $TINYMASK_DATA, else facemask-v1)")
    parser.add_argument("--eval-data", type=Path, nargs="*", default=None, metavar="DIR",
                        help="out-of-domain sets (default: the shared sets the bundle did not train on)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split and class")
    parser.add_argument("--max-no-face", type=float, default=None, metavar="SHARE",
                        help="a stricter door: also admit at most this share of the no-face pictures"
                             " (scenes-negative test), e.g. 0.02; costs masked admissions, which it prints")
    parser.add_argument("--write", action="store_true", help="store the threshold and rates in the card")
    parser.add_argument("--force", action="store_true", help="with --write: allow rewriting the committed reference's card")
    args = parser.parse_args(argv)
    ood.check_share(args.max_no_face, "--max-no-face")
    if args.write and args.bundle.resolve() == REFERENCE.resolve() and not args.force:
        raise UserError(f"--write to {args.bundle}: the committed reference changes through `tinymask build --publish`"
                        " and its gate; calibrate a copy (cp -r models/tinymask /tmp/mine), or pass --force")
    if args.write and args.limit is not None:
        print(f"note: --write with --limit {args.limit}: the card gets a threshold measured on a subset (a quick"
              " look); run without --limit for the one to ship", file=sys.stderr)
    card, door = calibrate(args.bundle, args.data, args.eval_data, args.limit, max_no_face=args.max_no_face)
    print(ood.summary(door))
    print(nobody.summary(door["nobody"]))
    fields = {**ood.card_fields(door), "nobody": door["nobody"]}
    stricter = (card.get("door_expected") or {}).get("target_no_face_admitted")
    if stricter is not None and args.max_no_face is None:
        print(f"note: the card's threshold was chosen for <= {stricter * 100:g}% no-face admitted as well; this"
              f" measure is for faces alone (pass --max-no-face {stricter:g} to keep the stricter door)")
    before = card.get("door_threshold")
    print(f"door threshold: {before if before is not None else 'none'} in the card, {fields['door_threshold']} measured")
    if args.write:
        card.update(fields)
        write_card(args.bundle, card)
        print(f"wrote {args.bundle / 'model_card.json'} (model unchanged, sha256 {card.get('sha256', '')[:12]}...)")
    return 0
