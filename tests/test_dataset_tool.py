"""tools.dataset: captured frames in a pulled archive -> a labelled folder host.make.data accepts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from host.errors import run_cli
from host.field.logread import format_frame, format_header
from host.make import data
from tools import dataset


def write_archive(archive: Path, device_id: str = "door-7", boots: int = 4, frames: int = 4,
                  log_dir: str = "logs", capture_dir: str = "captures") -> None:
    """What tools.pull leaves: logs plus real JPEGs, predicted label alternating per frame."""
    rng = np.random.default_rng(len(device_id))
    dev = archive / device_id
    for boot in range(1, boots + 1):
        lines = [format_header(device_id, boot, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7")]
        for seq in range(1, frames + 1):
            label = "with_mask" if (seq + boot) % 2 else "without_mask"
            image = f"{capture_dir}/{label}/b{boot:06d}-s{seq:06d}.jpg"
            score = 0.9 - seq / 100 if label == "with_mask" else 0.1 + seq / 100
            lines.append(format_frame(seq, 100 * seq, label, score, 14, 33, "closed", image))
            (dev / image).parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(dev / image, quality=90)
        (dev / log_dir).mkdir(parents=True, exist_ok=True)
        (dev / log_dir / f"b{boot:06d}-p000.log").write_text("".join(lines))


def manifest(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_captures_become_a_test_set_that_host_data_accepts(tmp_path, capsys):
    write_archive(tmp_path / "archive")
    write_archive(tmp_path / "archive", device_id="lobby", boots=1, frames=2)
    out = tmp_path / "ds"
    assert run_cli(dataset.main, ["--from", str(tmp_path / "archive"), "--to", str(out)]) == 0
    rows = manifest(out)
    assert len(rows) == 18 and list(rows[0]) == dataset.COLUMNS
    row = next(r for r in rows if r["path"] == "with_mask/door-7-b000001-s000002.jpg")
    assert row == {"path": "with_mask/door-7-b000001-s000002.jpg", "label": "with_mask", "split": "test",
                   "group": "door-7-b000001", "device_id": "door-7", "boot": "1", "seq": "2",
                   "score": "0.8800", "predicted": "with_mask"}
    assert (out / row["path"]).read_bytes() == (
        tmp_path / "archive" / "door-7" / "captures" / "with_mask" / "b000001-s000002.jpg").read_bytes()
    samples, skipped, layout = data.discover(out)
    assert layout == "manifest" and skipped == [] and len(samples) == 18
    assert {s.split for s in samples} == {"test"} and {s.label for s in samples} == {"with_mask", "without_mask"}
    kept, pixels = data.decode(samples, skipped, progress=False)
    assert len(kept) == 18 and pixels.shape == (18, 32, 32, 3)


def test_running_again_adds_nothing_and_respects_hand_corrections(tmp_path, capsys):
    write_archive(tmp_path / "archive")
    out = tmp_path / "ds"
    argv = ["--from", str(tmp_path / "archive"), "--to", str(out)]
    assert run_cli(dataset.main, argv) == 0
    first = manifest(out)
    assert run_cli(dataset.main, argv) == 0
    assert manifest(out) == first  # idempotent
    assert "0 added, 16 already there" in capsys.readouterr().out
    # a person decides the camera was wrong about one frame and moves it
    (out / "without_mask").mkdir(exist_ok=True)
    (out / "with_mask" / "door-7-b000001-s000002.jpg").rename(out / "without_mask" / "door-7-b000001-s000002.jpg")
    assert run_cli(dataset.main, argv) == 0
    rows = {r["path"]: r for r in manifest(out)}
    assert len(rows) == 16 and "with_mask/door-7-b000001-s000002.jpg" not in rows
    moved = rows["without_mask/door-7-b000001-s000002.jpg"]
    assert moved["label"] == "without_mask" and moved["predicted"] == "with_mask"
    assert not (out / "with_mask" / "door-7-b000001-s000002.jpg").exists()  # not copied back
    assert "1 relabelled by hand" in capsys.readouterr().out


def test_split_none_lets_host_data_carve_splits_by_boot(tmp_path):
    write_archive(tmp_path / "archive", boots=8, frames=4)
    out = tmp_path / "ds"
    assert run_cli(dataset.main, ["--from", str(tmp_path / "archive"), "--to", str(out), "--split", "none"]) == 0
    loaded = data.load_dataset(out, progress=False)
    sizes = [len(loaded.train), len(loaded.val), len(loaded.test)]
    assert sum(sizes) == 32 and min(sizes) > 0
    train_groups, test_groups = set(loaded.train.groups), set(loaded.test.groups)
    assert not train_groups & test_groups  # one boot never on both sides


def test_no_captures_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "archive" / "door-7" / "logs").mkdir(parents=True)
    code = run_cli(dataset.main, ["--from", str(tmp_path / "archive"), "--to", str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no captured images" in err
    code = run_cli(dataset.main, ["--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "ds")])
    assert code == 2 and "no such archive folder" in capsys.readouterr().err


@pytest.mark.parametrize("with_config", [True, False], ids=["config.json", "from-the-logs"])
def test_capture_and_log_folders_named_by_the_camera_config(tmp_path, with_config):
    archive = tmp_path / "archive"
    write_archive(archive, boots=2, frames=3, log_dir="sd/log", capture_dir="frames")
    if with_config:
        (archive / "door-7" / "config.json").write_text(json.dumps({"log_dir": "sd/log", "capture_dir": "frames"}))
    out = tmp_path / "ds"
    assert run_cli(dataset.main, ["--from", str(archive), "--to", str(out)]) == 0
    rows = manifest(out)
    assert len(rows) == 6
    assert all(r["score"] and r["boot"] for r in rows)  # the log lines were matched to the images


@pytest.mark.parametrize("how", ["config", "log", "link"])
def test_a_capture_folder_off_the_device_folder_is_never_copied(tmp_path, capsys, how):
    """Found in review: a config.json capture_dir of '../../x', or a log line naming '../../x/...',
    copied pictures from outside the archive into the dataset."""
    outside = tmp_path / "outside"
    write_archive(outside, device_id="private", boots=1, frames=2)
    archive = tmp_path / "archive"
    write_archive(archive, boots=1, frames=2)
    dev = archive / "door-7"
    escape = "../../outside/private/captures"
    if how == "config":
        (dev / "config.json").write_text(json.dumps({"capture_dir": escape}))
    elif how == "log":
        (dev / "captures").rename(dev / "gone")
        with open(dev / "logs" / "b000001-p000.log", "a") as log:
            log.write(format_frame(9, 900, "with_mask", 0.9, 14, 33, "closed", f"{escape}/with_mask/b000001-s000001.jpg"))
    else:
        for label in ("with_mask", "without_mask"):
            for image in (dev / "captures" / label).iterdir():
                image.unlink()
        (dev / "captures").rename(dev / "gone")
        (dev / "captures").symlink_to(outside / "private" / "captures", target_is_directory=True)
    out = tmp_path / "ds"
    run_cli(dataset.main, ["--from", str(archive), "--to", str(out)])
    copied = {p.read_bytes() for p in out.rglob("*.jpg")}
    private = {p.read_bytes() for p in (outside / "private" / "captures").rglob("*.jpg")}
    assert not copied & private
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if how != "log":
        assert "outside" in err or "ignored" in err


def test_a_frame_deleted_or_set_aside_by_hand_is_not_copied_back(tmp_path, capsys):
    """Found in review: a frame the user deleted, or moved to a folder of their own (unsure/), came back into
    its predicted folder on the next run. New frames still arrive."""
    archive = tmp_path / "archive"
    write_archive(archive, boots=1, frames=4)
    out = tmp_path / "ds"
    argv = ["--from", str(archive), "--to", str(out)]
    assert run_cli(dataset.main, argv) == 0
    (out / "with_mask" / "door-7-b000001-s000002.jpg").unlink()
    (out / "unsure").mkdir()
    (out / "without_mask" / "door-7-b000001-s000001.jpg").rename(out / "unsure" / "door-7-b000001-s000001.jpg")
    write_archive(archive, boots=2, frames=4)  # the camera captured more since
    capsys.readouterr()
    assert run_cli(dataset.main, argv) == 0
    names = {r["path"].split("/")[-1] for r in manifest(out)}
    assert "door-7-b000001-s000002.jpg" not in names and "door-7-b000001-s000001.jpg" not in names
    assert not (out / "with_mask" / "door-7-b000001-s000002.jpg").exists()
    assert not (out / "without_mask" / "door-7-b000001-s000001.jpg").exists()
    assert sum(n.startswith("door-7-b000002") for n in names) == 4
    assert "2 removed by hand not added again" in capsys.readouterr().out
    samples, skipped, _ = data.discover(out)  # the dataset still loads, the record file is not a picture
    assert len(samples) == len(names) and not any(".tinymask-seen" in str(s.path) for s in skipped)
