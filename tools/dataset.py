"""Turn the frames cameras captured (capture mode) into a labelled dataset that host.build reads.

    python -m tools.dataset --from ARCHIVE --to DATASET_DIR [--split test|none]

Reads `ARCHIVE/<device>/captures/<label>/*.jpg` (as tools.pull stores them) and the logs beside
them (other folder names when the camera's config.json sets capture_dir / log_dir), and writes `DATASET_DIR/<label>/<device>-<file>.jpg` plus `DATASET_DIR/manifest.csv` with
path,label,split,group,device_id,boot,seq,score,predicted. Each image starts in the folder of the
label the camera predicted; a person corrects mistakes by moving files between the label folders.
Folders win: running the tool again never moves an image back, it only adds new ones and rewrites
the manifest from where the images are now. `group` is device+boot (frames of one boot are near
duplicates), so splits never put one person's session on both sides.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from host.errors import UserError, run_cli
from host.field.logread import parse_log
from host.make.data import IMAGE_SUFFIXES, canonical_label
from tools import pull

COLUMNS = ["path", "label", "split", "group", "device_id", "boot", "seq", "score", "predicted"]
FRAME_NAME = re.compile(r"b(\d+)-s(\d+)$")


@dataclass
class Capture:
    source: Path  # file in the archive
    device_id: str
    label: str  # the archive folder it sits in
    predicted: str  # what the camera's log says it predicted (the folder, if no log line)
    boot: int | None
    seq: int | None
    score: float | None

    @property
    def name(self) -> str:
        return f"{self.device_id}-{self.source.name}"

    @property
    def group(self) -> str:
        return f"{self.device_id}-b{self.boot:06d}" if self.boot is not None else f"{self.device_id}-{self.source.stem}"


SEEN_FILE = ".tinymask-seen.txt"  # every picture the tool ever added: one it finds gone was removed by hand


def log_scores(device_dir: Path, log_dir: str) -> dict:
    """{image path relative to the card root: (score, label)} from every frame record that saved one.
    Logs are read from log_dir, or from anywhere in the device folder when that folder is absent."""
    base = device_dir / log_dir
    logs = sorted(base.rglob("*.log")) if base.is_dir() else sorted(device_dir.rglob("*.log"))
    found = {}
    for log in logs:
        for record in parse_log(log.read_bytes(), str(log)).records:
            if record.kind == "F" and record.image:
                found[record.image] = (record.score, record.label)
    return found


def capture_folder(device_dir: Path, configured: str, scores: dict) -> str:
    """The captures folder: the configured one if it is there, else the one the logs' image paths name."""
    if (device_dir / configured).is_dir():
        return configured
    for image in scores:
        top = image.rsplit("/", 2)[0] if image.count("/") >= 2 else ""
        if top and pull.plain_dir(top) and (device_dir / top).is_dir():  # a log line names it: stay on the card
            return top
    return configured


def captures(archive: Path) -> tuple[list[Capture], list[str]]:
    """Every captured image in the archive, with what the logs say about it; and what was skipped."""
    if not archive.is_dir():
        raise UserError(f"--from {archive}: no such archive folder; fill it with `python -m tools.pull`")
    out, skipped = [], []
    for device_dir in sorted(d for d in archive.iterdir() if d.is_dir() and not d.name.startswith(".")):
        # the folders the camera's config.json names, confined to the device folder as tools.pull confines them
        log_dir, configured = pull.card_dirs(device_dir / pull.CONFIG_FILE)
        scores = log_scores(device_dir, log_dir)
        capture_rel = capture_folder(device_dir, configured, scores)
        capture_dir = device_dir / capture_rel
        if not capture_dir.is_dir():
            continue
        root = device_dir.resolve()
        if not pull.inside(capture_dir, root):
            skipped.append(f"{capture_dir}: leads outside {device_dir} ({capture_dir.resolve()})")
            continue
        for label_dir in sorted(d for d in capture_dir.iterdir() if d.is_dir()):
            label = canonical_label(label_dir.name)
            if label is None:
                skipped.append(f"{label_dir}: not a known label folder")
                continue
            for image in sorted(label_dir.iterdir()):
                if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                match = FRAME_NAME.match(image.stem)
                boot, seq = (int(match.group(1)), int(match.group(2))) if match else (None, None)
                score, logged = scores.get(f"{capture_rel}/{label_dir.name}/{image.name}", (None, None))
                predicted = canonical_label(logged) if logged else label
                out.append(Capture(image, device_dir.name, label, predicted or label, boot, seq, score))
    return out, skipped


def existing_images(dataset: Path) -> dict:
    """{file name: path} of the images already sorted into label folders of the dataset."""
    found = {}
    for label_dir in sorted(d for d in dataset.iterdir() if d.is_dir()) if dataset.is_dir() else []:
        if canonical_label(label_dir.name) is None:
            continue
        for image in label_dir.iterdir():
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES:
                found[image.name] = image
    return found


def same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and _sha(a) == _sha(b)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(dataset: Path) -> dict:
    """Previous manifest rows by file name (keeps metadata of images whose archive is gone)."""
    path = dataset / "manifest.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {Path(row["path"]).name: row for row in csv.DictReader(f) if row.get("path")}


def build(archive: Path, dataset: Path, split: str) -> dict:
    found, skipped = captures(Path(archive))
    if not found:
        for line in skipped:  # why a folder that was there gave nothing
            print(f"skipped {line}", file=sys.stderr)
        raise UserError(f"{archive}: no captured images (expected <device>/captures/<label>/*.jpg); "
                        f"set capture_mode on the camera, then pull")
    dataset.mkdir(parents=True, exist_ok=True)
    present = existing_images(dataset)
    previous = read_manifest(dataset)
    seen = read_seen(dataset) | set(previous)  # every picture an earlier run added
    added = kept = removed = 0
    for capture in found:
        there = present.get(capture.name)
        if there is not None:
            if not same_bytes(there, capture.source):
                skipped.append(f"{capture.source}: differs from {there} of the same name; left out")
            kept += 1
            continue
        if capture.name in seen:  # added before and gone from the label folders: deleted or set aside by hand
            removed += 1
            continue
        target = dataset / capture.label / capture.name
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(capture.source, tmp)
        os.replace(tmp, target)
        present[capture.name] = target
        added += 1
    rows = manifest_rows(dataset, present, {c.name: c for c in found}, previous, split)
    write_manifest(dataset, rows)
    write_seen(dataset, seen | set(present))
    corrected = sum(r["label"] != r["predicted"] for r in rows)
    per_label = {}
    for row in rows:
        per_label[row["label"]] = per_label.get(row["label"], 0) + 1
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"{dataset}: {len(rows)} images ({', '.join(f'{k} {v}' for k, v in sorted(per_label.items()))}); "
          f"{added} added, {kept} already there, {corrected} relabelled by hand"
          + (f", {removed} removed by hand not added again (delete {SEEN_FILE} to bring them back)" if removed else ""))
    return {"images": len(rows), "added": added, "kept": kept, "corrected": corrected, "removed": removed,
            "skipped": len(skipped)}


def read_seen(dataset: Path) -> set[str]:
    path = dataset / SEEN_FILE
    return set(path.read_text(encoding="utf-8").split()) if path.is_file() else set()


def write_seen(dataset: Path, names: set[str]) -> None:
    path = dataset / SEEN_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{name}\n" for name in sorted(names)), encoding="utf-8")
    os.replace(tmp, path)


def manifest_rows(dataset: Path, present: dict, by_name: dict, previous: dict, split: str) -> list[dict]:
    rows = []
    for name, path in sorted(present.items()):
        label = canonical_label(path.parent.name)
        capture = by_name.get(name)
        if capture is not None:
            meta = {"group": capture.group, "device_id": capture.device_id,
                    "boot": "" if capture.boot is None else capture.boot,
                    "seq": "" if capture.seq is None else capture.seq,
                    "score": "" if capture.score is None else f"{capture.score:.4f}", "predicted": capture.predicted}
        else:
            meta = {k: v for k, v in previous.get(name, {}).items() if k in COLUMNS[3:]}
            meta.setdefault("predicted", label)
        rows.append({"path": path.relative_to(dataset).as_posix(), "label": label,
                     "split": "test" if split == "test" else "", **{k: meta.get(k, "") for k in COLUMNS[3:]}})
    return rows


def write_manifest(dataset: Path, rows: list[dict]) -> None:
    path = dataset / "manifest.csv"
    tmp = path.with_name("manifest.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tools.dataset", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="archive", type=Path, required=True, help="archive written by tools.pull")
    parser.add_argument("--to", dest="dataset", type=Path, required=True, help="dataset folder (created if needed)")
    parser.add_argument("--split", choices=("test", "none"), default="test",
                        help="split column: test (an on-device test set, the default) or none "
                             "(empty: host.make.data carves train/val/test by group, for fine-tuning)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    build(args.archive, args.dataset, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
