"""End to end, as a user would: simulated camera -> pulled archive -> ingest -> labelled dataset -> report.

Every step is the real command line: host.simulate runs the real firmware/main.py over real test
images with the real TFLM interpreter; tools.pull copies the card; host.ingest loads it into DuckDB;
tools.dataset turns the captures into label folders, which a "person" corrects; host.report must then
give back exactly the numbers the frames fed in and the card's log imply.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from host.field.logread import parse_log
from host.make.data import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = 20

def bundle_dir() -> Path:
    bundle = Path(os.environ.get("TINYMASK_BUNDLE", ROOT / "models" / "tinymask"))
    if not (bundle / "model_card.json").is_file():
        pytest.fail(f"{bundle} is missing: run python -m host.build")
    return bundle


def command(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    test_split = default_data_dir() / "test"
    if not test_split.is_dir():
        pytest.fail(f"dataset not found at {test_split}: set TINYMASK_DATA")
    frames = base / "frames"
    for label in ("with_mask", "without_mask"):
        (frames / label).mkdir(parents=True)
        for image in sorted((test_split / label).glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(image, frames / label / image.name)
    bundle = bundle_dir()
    card = base / "sd"
    command("host.simulate", "--frames", str(frames), "--bundle", str(bundle), "--sd", str(card),
            "--config", "capture_mode=every_n", "--config", "capture_every_n=1", "--config", "camera_skip_ms=0",
            "--config", "log_max_bytes=4096", "--config", "device_id=door-1")
    archive = base / "archive"
    command("tools.pull", "--from", str(card), "--to", str(archive))
    database = base / "t.duckdb"
    ingest_out = command("host.ingest", str(archive), "--db", str(database), "--no-progress")
    # the person: tools.dataset files each capture under the camera's decision; they move every
    # image to the folder of what the frame really shows
    dataset = base / "dataset"
    command("tools.dataset", "--from", str(archive), "--to", str(dataset))
    log = parse_log(b"".join(p.read_bytes() for p in sorted((card / "logs").glob("*.log"))))
    logged_frames = sorted((r for r in log.records if r.kind == "F"), key=lambda r: r.seq)
    truth_in_order = [label for label in ("with_mask", "without_mask") for _ in range(PER_CLASS)]
    truth = {r.seq: truth_in_order[i] for i, r in enumerate(logged_frames)}
    for image in list(dataset.rglob("*.jpg")):
        seq = int(image.stem.rsplit("-s", 1)[1])
        target = dataset / truth[seq] / image.name
        if target != image:
            target.parent.mkdir(exist_ok=True)
            image.rename(target)
    out = base / "report"
    report_out = command("host.report", "--db", str(database), "--out", str(out), "--bundle", str(bundle),
                         "--labelled", str(dataset))
    return {"report": json.loads((out / "report.json").read_text()), "log": log, "frames": logged_frames,
            "truth": truth, "out": out, "ingest_out": ingest_out, "report_out": report_out}


def test_report_counts_what_was_fed_and_logged(pipeline):
    report, frames = pipeline["report"], pipeline["frames"]
    assert len(frames) == 2 * PER_CLASS  # every frame fed in was logged once
    assert report["summary"]["frames"] == 2 * PER_CLASS and report["summary"]["devices"] == 1
    assert report["summary"]["devices_list"][0]["device_id"] == "door-1"
    assert {r["label"]: r["frames"] for r in report["summary"]["labels"]} == Counter(r.label for r in frames)
    openings = sum(1 for r in pipeline["log"].records if r.event == "door_open")
    assert report["doors"]["openings"] == report["summary"]["door_openings"] == openings
    assert report["summary"]["captured_frames"] == 2 * PER_CLASS
    assert f"{len(pipeline['log'].records)} new records" in pipeline["ingest_out"]
    # the firmware logs the frame that opened the door just before its door_open event (format 2)
    by_seq = {r.seq: r for r in pipeline["log"].records}
    assert report["doors"]["recent"]
    for opening in report["doors"]["recent"]:
        trigger = by_seq[opening["seq"] - 1]
        assert trigger.kind == "F" and trigger.score == pytest.approx(opening["trigger_score"])


def test_on_device_accuracy_matches_the_truth_of_the_frames(pipeline):
    m = pipeline["report"]["on_device"]
    frames, truth = pipeline["frames"], pipeline["truth"]
    assert m["matched"] == 2 * PER_CLASS and m["unmatched"] == 0
    assert m["accuracy"] == pytest.approx(sum(r.label == truth[r.seq] for r in frames) / len(frames))
    assert sum(map(sum, m["confusion_matrix"])) == 2 * PER_CLASS
    assert "on-device accuracy:" in pipeline["report_out"]


def test_board_and_host_models_agree_on_captured_frames(pipeline):
    a = pipeline["report"]["board_vs_host"]
    assert a["compared"] == 2 * PER_CLASS and a["missing_images"] == 0
    assert a["agree"] + len(a["differing"]) == a["compared"]
    # captures are JPEGs of what the board saw: near-identical pixels, so decisions rarely flip
    assert a["agreement"] >= 0.9 and a["score_abs_diff_mean"] < 0.05
    for frame in a["differing"]:
        assert frame["host_label"] != frame["label"]


def test_report_html_is_complete(pipeline):
    html = (pipeline["out"] / "report.html").read_text()
    for section in ("On-device accuracy", "Board vs host", "Least-confident frames", "Data gaps", "Door"):
        assert section in html
    assert html.count("data:image/jpeg;base64,") >= 24  # least-confident thumbnails from the captures
