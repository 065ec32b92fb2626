"""host.report: the figures in report.json match the logs fed in; the HTML renders in a real browser."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from host.errors import UserError
from host.field.ingest import ingest
from host.field.logread import format_event, format_frame, format_header
from host.field.report.cli import build_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def quiet(_line):
    pass


def write_boot(root: Path, device: str, boot: int, frames: int, step_ms: int, seed: int,
               silent_after: int | None = None, capture_every: int | None = None) -> list[dict]:
    """One boot's log (a door opening after every 5 masked frames in a row); returns its frames."""
    rng = random.Random(seed)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lines = [format_header(device, boot, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7"),
             format_event(0, 0, "boot", "reset=normal")]
    written, seq, ticks, streak, is_open = [], 1, 0, 0, False
    for i in range(frames):
        ticks += step_ms + (60_000 if silent_after is not None and i == silent_after else 0)
        score = round(rng.random(), 4)
        label = "with_mask" if score >= 0.5 else "without_mask"
        streak = streak + 1 if label == "with_mask" else 0
        if streak == 5 and not is_open:
            lines.append(format_event(seq, ticks, "door_open", "mask"))
            seq, is_open = seq + 1, True
        elif label == "without_mask" and is_open:
            lines.append(format_event(seq, ticks, "door_close", "no_mask"))
            seq, is_open = seq + 1, False
        image = None
        if capture_every and i % capture_every == 0:
            image = f"captures/{label}/b{boot:06d}-s{seq:06d}.jpg"
            (root / image).parent.mkdir(parents=True, exist_ok=True)
            shade = int(score * 255)
            Image.new("RGB", (200, 200), (shade, 255 - shade, 128)).save(root / image, quality=90)
        lines.append(format_frame(seq, ticks, label, score, 12 + i % 5, 30 + i % 7, "closed", image))
        written.append({"seq": seq, "ticks": ticks, "label": label, "score": score, "image": image})
        seq += 1
    (logs / f"b{boot:06d}-p000.log").write_text("".join(lines))
    (root / "tinymask_boot.txt").write_text(str(boot))
    return written


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("fleet")
    archive = base / "archive"
    cam1 = {1: write_boot(archive / "cam1", "cam1", 1, 3000, 2000, seed=1, capture_every=200),
            3: write_boot(archive / "cam1", "cam1", 3, 500, 1000, seed=3, silent_after=250)}
    cam2 = {1: write_boot(archive / "cam2", "cam2", 1, 400, 500, seed=9)}
    database = base / "fleet.duckdb"
    ingest([archive], database, progress=False, echo=quiet)
    return {"base": base, "db": database, "cam1": cam1, "cam2": cam2, "archive": archive}


@pytest.fixture(scope="module")
def cam1_report(fleet):
    out = fleet["base"] / "report-cam1"
    report = build_report(fleet["db"], out, device="cam1", bundle_dir=None, echo=quiet)
    return report, out


def test_report_figures_match_the_frames_fed_in(cam1_report, fleet):
    report, out = cam1_report
    frames = [f for boot in fleet["cam1"].values() for f in boot]
    saved = json.loads((out / "report.json").read_text())
    assert saved["summary"]["frames"] == len(frames) == report["summary"]["frames"]
    assert {r["label"]: r["frames"] for r in saved["summary"]["labels"]} == Counter(f["label"] for f in frames)
    assert saved["summary"]["devices"] == 1 and saved["summary"]["boots"] == 2
    expected_hours = Counter((boot, f["ticks"] // 3_600_000) for boot, fs in fleet["cam1"].items() for f in fs)
    got_hours = {(r["boot"], r["hour"]): r["frames"] for r in saved["per_hour"] if r["frames"]}
    assert got_hours == dict(expected_hours)
    decisions = Counter()
    for row in saved["per_hour"]:
        decisions.update(row["decisions"])
    assert decisions == Counter(f["label"] for f in frames)
    histogram_total = {label: sum(counts) for label, counts in saved["score_histograms"].items()}
    assert histogram_total == Counter(f["label"] for f in frames)
    assert sum(b["count"] for b in saved["distributions"]["infer_ms"]) == len(frames)


def test_report_counts_door_openings_and_their_triggers(cam1_report, fleet):
    report, _ = cam1_report
    logs = (fleet["archive"] / "cam1" / "logs")
    text = "".join(p.read_text() for p in sorted(logs.iterdir()))
    openings = text.count(",door_open,")
    assert report["summary"]["door_openings"] == report["doors"]["openings"] == openings > 0
    assert {(r["event"], r["reason"]): r["count"] for r in report["doors"]["reasons"]}[("door_open", "mask")] == openings
    for opening in report["doors"]["recent"]:
        assert opening["trigger_label"] == "with_mask" and opening["trigger_score"] >= 0.5


def test_report_finds_gaps_and_least_confident_frames(cam1_report, fleet):
    report, out = cam1_report
    gaps = report["gaps"]
    assert gaps["missing_boots"] == [{"device_id": "cam1", "boots": [2], "count": 1}]
    assert [b["boot"] for b in gaps["boots"]] == [1, 3]
    assert any(s["boot"] == 3 and s["seconds"] >= 50 for s in gaps["silent"])
    assert not any(s["boot"] == 1 for s in gaps["silent"])
    frames = [f for boot in fleet["cam1"].values() for f in boot]
    closest = sorted(abs(f["score"] - 0.5) for f in frames)[:24]
    assert [round(f["margin"], 6) for f in report["least_confident"]] == [round(c, 6) for c in closest]
    html = (out / "report.html").read_text()
    captured = [f for f in report["least_confident"] if f["image"]]
    assert html.count('src="data:image/jpeg;base64,') == len(captured)
    assert html.count('src="data:image/png;base64,') >= 5 and "http://" not in html and "https://" not in html
    assert {p.name for p in out.glob("*.png")} >= {"per_hour.png", "over_time.png", "distributions.png",
                                                     "scores.png", "coverage.png"}


def test_report_filters_by_device_and_boot(fleet, tmp_path):
    report = build_report(fleet["db"], tmp_path / "r", since_boot=3, bundle_dir=None, echo=quiet)
    assert report["summary"]["frames"] == len(fleet["cam1"][3])
    everything = build_report(fleet["db"], tmp_path / "all", bundle_dir=None, echo=quiet)
    assert everything["summary"]["devices"] == 2
    assert everything["summary"]["frames"] == sum(len(b) for cam in ("cam1", "cam2") for b in fleet[cam].values())
    with pytest.raises(UserError, match="known: cam1, cam2"):
        build_report(fleet["db"], tmp_path / "x", device="cam9", bundle_dir=None, echo=quiet)
    with pytest.raises(UserError, match="no such database"):
        build_report(tmp_path / "none.duckdb", tmp_path / "x", bundle_dir=None, echo=quiet)


def test_on_device_accuracy_from_a_labelled_folder(fleet, tmp_path):
    """A person sorted some captured frames; some of the camera's decisions were wrong."""
    frames = fleet["cam1"][1][:40]
    labelled = tmp_path / "labelled"
    truth = {}
    for i, frame in enumerate(frames):
        wrong = i % 4 == 0
        flip = {"with_mask": "without_mask", "without_mask": "with_mask"}
        label = flip[frame["label"]] if wrong else frame["label"]
        truth[frame["seq"]] = (label, frame["label"])
        folder = labelled / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(folder / f"cam1-b000001-s{frame['seq']:06d}.jpg")
    Image.new("RGB", (8, 8)).save(labelled / "with_mask" / "cam1-b000042-s000001.jpg")  # no such log line
    report = build_report(fleet["db"], tmp_path / "r", device="cam1", labelled=labelled, bundle_dir=None, echo=quiet)
    m = report["on_device"]
    pairs = list(truth.values())
    assert m["matched"] == 40 and m["unmatched"] == 1
    assert m["accuracy"] == pytest.approx(sum(t == p for t, p in pairs) / 40)
    tp = sum(t == p == "with_mask" for t, p in pairs)
    assert m["positive"]["precision"] == pytest.approx(tp / sum(p == "with_mask" for _, p in pairs))
    assert m["positive"]["recall"] == pytest.approx(tp / sum(t == "with_mask" for t, _ in pairs))
    assert sum(map(sum, m["confusion_matrix"])) == 40
    assert (tmp_path / "r" / "confusion.png").is_file()


def test_cli_writes_report_and_explains_errors(fleet, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "host.report", "--db", str(fleet["db"]), "--device", "cam2",
                             "--out", str(out), "--bundle", str(tmp_path / "nobundle")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "no model_card.json" in result.stderr
    result = subprocess.run([sys.executable, "-m", "host.report", "--db", str(fleet["db"]), "--device", "cam2",
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert f"({len(fleet['cam2'][1])} frames, 1 camera(s), 1 boot(s)" in result.stdout
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    result = subprocess.run([sys.executable, "-m", "host.report", "--db", str(fleet["db"]), "--device", "nope",
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.startswith("error: --device nope: no such camera")


def render_in_chromium(page: Path, tmp_path: Path) -> tuple[str, str]:
    """(DOM after load, browser log) of a page rendered by headless chromium."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return result.stdout, result.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium); CI has it")
def test_report_renders_in_a_real_browser(cam1_report, tmp_path):
    report, out = cam1_report
    dom, log = render_in_chromium(out / "report.html", tmp_path)
    assert '<body data-images="' in dom and 'data-plots-loaded="yes"' in dom
    images = int(dom.split('data-images="')[1].split('"')[0])
    assert images >= 5 + sum(1 for f in report["least_confident"] if f["image"])
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == []  # the report logs nothing unless an image failed or a script broke
    broken = out / "broken.html"
    broken.write_text((out / "report.html").read_text().replace('src="data:image/png;base64,', 'src="data:image/png;base64,AAAA', 1))
    dom, log = render_in_chromium(broken, tmp_path)
    assert 'data-plots-loaded="no"' in dom and any(":CONSOLE" in line and "failed to load" in line
                                                    for line in log.splitlines())
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
