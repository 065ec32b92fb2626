"""tools.pull from a fake camera (through the real mpremote) and from a mounted card folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import serial
from fakedevice import FakeDevice, tree

from host.errors import run_cli
from host.field.logread import format_event, format_frame, format_header
from tools import pull


def write_card(card: Path, device_id: str = "door-7", boots: int = 2, frames: int = 3) -> None:
    """An SD card as the firmware leaves it: one log per boot, captured JPEG-ish files."""
    for boot in range(1, boots + 1):
        lines = [format_header(device_id, boot, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7"), format_event(0, 5, "boot")]
        for seq in range(1, frames + 1):
            label = "with_mask" if seq % 2 else "without_mask"
            image = f"captures/{label}/b{boot:06d}-s{seq:06d}.jpg"
            lines.append(format_frame(seq, 100 * seq, label, 0.9 if seq % 2 else 0.1, 14, 33, "closed", image))
            (card / image).parent.mkdir(parents=True, exist_ok=True)
            (card / image).write_bytes(b"\xff\xd8" + bytes([boot, seq]) * 300 + b"\xff\xd9")
        (card / "logs").mkdir(parents=True, exist_ok=True)
        (card / "logs" / f"b{boot:06d}-p000.log").write_text("".join(lines))


def archived(archive: Path, device_id: str = "door-7") -> dict:
    return {k: v for k, v in tree(archive / device_id).items() if k != pull.STATE_FILE}


def run(argv, capsys):
    code = run_cli(pull.main, argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def camera(tmp_path):
    write_card(tmp_path / "camera" / "sdcard")
    with FakeDevice(tmp_path / "camera") as device:
        yield device


def test_pulling_twice_stores_each_file_once(camera, tmp_path, capsys):
    archive = tmp_path / "archive"
    code, out, err = run(["--port", camera.port, "--to", str(archive)], capsys)
    assert code == 0, err
    card = tree(camera.board.root / "sdcard")
    assert archived(archive) == card  # a mirror of the card, under the device id from the log header
    assert "8 new, 0 updated, 0 unchanged" in out
    reads = camera.board.reads
    code, out, _ = run(["--port", camera.port, "--to", str(archive)], capsys)
    assert code == 0 and "0 new, 0 updated, 8 unchanged" in out
    assert camera.board.reads == reads + 1  # only the first log header was read again, nothing copied
    assert archived(archive) == card
    state = json.loads((archive / "door-7" / pull.STATE_FILE).read_text())
    assert set(state["files"]) == set(card) and len(state["pulls"]) == 2
    assert ("reset",) in camera.events  # the door program is started again


def test_a_log_that_grew_is_updated(camera, tmp_path, capsys):
    archive = tmp_path / "archive"
    assert run(["--port", camera.port, "--to", str(archive)], capsys)[0] == 0
    log = camera.board.root / "sdcard" / "logs" / "b000002-p000.log"
    with open(log, "a") as f:
        f.write(format_frame(4, 400, "with_mask", 0.97, 14, 33, "opening", None))
    code, out, _ = run(["--port", camera.port, "--to", str(archive)], capsys)
    assert code == 0 and "0 new, 1 updated, 7 unchanged" in out
    assert (archive / "door-7" / "logs" / "b000002-p000.log").read_bytes() == log.read_bytes()
    assert not list((archive / "door-7" / "logs").glob("*.conflict-*"))


def test_a_file_rewritten_on_the_card_keeps_the_old_copy(tmp_path, capsys):
    card = tmp_path / "card"
    write_card(card)
    archive = tmp_path / "archive"
    assert run(["--from", str(card), "--to", str(archive)], capsys)[0] == 0
    old = (card / "logs" / "b000001-p000.log").read_bytes()
    rewritten = old[:120] + b"F,9,0,with_mask,0.5,1,1,closed,-*00\n" * 20  # longer, but not an append
    (card / "logs" / "b000001-p000.log").write_bytes(rewritten)
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0 and "1 conflict(s)" in out and "kept as b000001-p000.log.conflict-1" in err
    assert (archive / "door-7" / "logs" / "b000001-p000.log.conflict-1").read_bytes() == old
    assert (archive / "door-7" / "logs" / "b000001-p000.log").read_bytes() == rewritten


def test_mounted_card_folder_same_rules(tmp_path, capsys):
    card = tmp_path / "card"
    write_card(card, device_id="lobby")
    archive = tmp_path / "archive"
    assert run(["--from", str(card), "--to", str(archive)], capsys)[0] == 0
    assert archived(archive, "lobby") == tree(card)
    code, out, _ = run(["--from", str(card), "--to", str(archive)], capsys)
    assert "0 new, 0 updated, 8 unchanged" in out


def test_interrupted_pull_resumes_without_duplicates(tmp_path, capsys):
    root = tmp_path / "camera"
    write_card(root / "sdcard", boots=6, frames=8)  # 54 files: two batches
    archive = tmp_path / "archive"
    with FakeDevice(root, drop_after_reads=40) as device:  # the cable is pulled in the second batch
        code, _, err = run(["--port", device.port, "--to", str(archive)], capsys)
    assert code == 2 and err.count("\n") == 1 and "run the pull again to resume" in err
    saved = archived(archive)
    assert len(saved) == pull.DeviceSource.batch_size
    with FakeDevice(root) as device:  # plugged back in
        code, out, _ = run(["--port", device.port, "--to", str(archive)], capsys)
    assert code == 0 and f"{54 - len(saved)} new, 0 updated, {len(saved)} unchanged" in out
    assert archived(archive) == tree(root / "sdcard")
    assert not (archive / "door-7" / pull.STAGING).exists()


def test_device_id_falls_back_to_the_board_id_then_asks(tmp_path, capsys):
    root = tmp_path / "camera"
    (root / "sdcard" / "captures" / "with_mask").mkdir(parents=True)
    (root / "sdcard" / "captures" / "with_mask" / "b000001-s000001.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    with FakeDevice(root, board_id="ABC123") as device:
        assert run(["--port", device.port, "--to", str(tmp_path / "a")], capsys)[0] == 0
    assert (tmp_path / "a" / "ABC123" / "captures" / "with_mask" / "b000001-s000001.jpg").is_file()
    code, _, err = run(["--from", str(root / "sdcard"), "--to", str(tmp_path / "b")], capsys)
    assert code == 2 and "pass --device NAME" in err
    assert run(["--from", str(root / "sdcard"), "--to", str(tmp_path / "b"), "--device", "hall"], capsys)[0] == 0
    assert (tmp_path / "b" / "hall" / "captures" / "with_mask" / "b000001-s000001.jpg").is_file()


def test_legacy_firmware_and_no_raw_paste(tmp_path, capsys):
    root = tmp_path / "camera"
    write_card(root, boots=1, frames=2)  # firmware < 4.6: the card is the whole filesystem
    with FakeDevice(root, legacy=True, firmware="4.5.5", raw_paste=False) as device:
        code, out, _ = run(["--port", device.port, "--to", str(tmp_path / "archive")], capsys)
    assert code == 0 and "3 new" in out  # one log, two images
    assert archived(tmp_path / "archive") == {k: v for k, v in tree(root).items() if k.startswith(("logs", "captures"))}


def test_no_device_busy_port_and_missing_folder_are_one_line(camera, tmp_path, capsys):
    code, _, err = run(["--port", str(tmp_path / "ttyACM9"), "--to", str(tmp_path / "a")], capsys)
    assert code == 2 and err.count("\n") == 1 and "error: no device at" in err
    with serial.Serial(camera.port, exclusive=True):
        code, _, err = run(["--port", camera.port, "--to", str(tmp_path / "a")], capsys)
    assert code == 2 and err.count("\n") == 1 and "error: port busy" in err
    code, _, err = run(["--from", str(tmp_path / "no-card"), "--to", str(tmp_path / "a")], capsys)
    assert code == 2 and err.count("\n") == 1 and "no such folder" in err
    assert not (tmp_path / "a").exists()


def everything_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("key, value", [("capture_dir", "../../home/.ssh"), ("capture_dir", "ABSOLUTE"),
                                        ("log_dir", "../../home/.ssh"), ("log_dir", "logs/../../home/.ssh")])
def test_card_config_cannot_send_the_pull_off_the_card(tmp_path, capsys, key, value):
    """Issue 12: a card config.json naming a folder outside the card (`..`, absolute) is ignored with
    one warning line naming config.json and the key; nothing off the card is copied; the card's own
    logs and captures still arrive, and config.json is archived."""
    home = tmp_path / "home" / ".ssh"
    home.mkdir(parents=True)
    (home / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    card = tmp_path / "media" / "card"
    write_card(card)
    value = str(home) if value == "ABSOLUTE" else value
    (card / "config.json").write_text(json.dumps({key: value, "threshold": 0.8}))
    archive = tmp_path / "archive"
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "config.json" in warnings[0] and key in warnings[0] and "ignored" in warnings[0]
    assert "secret" not in "".join(p.read_text(errors="replace") for p in archive.rglob("*") if p.is_file())
    assert not any("id_rsa" in name for name in everything_under(tmp_path) - {"home/.ssh/id_rsa"})
    assert archived(archive) == tree(card)  # the card's logs, captures and config.json, nothing else
    assert "config.json" in archived(archive)


def test_card_config_of_the_wrong_types_falls_back_to_the_default_folders(tmp_path, capsys):
    card = tmp_path / "card"
    write_card(card)
    for config in ({"log_dir": 5, "capture_dir": ["captures"]}, ["logs"], {"log_dir": None}):
        (card / "config.json").write_text(json.dumps(config))
        archive = tmp_path / f"archive-{type(config).__name__}-{len(config)}"
        code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
        assert code == 0 and "Traceback" not in err, err
        assert 1 <= err.count("warning:") <= 2 and "config.json" in err
        assert archived(archive) == tree(card)
    (card / "config.json").write_bytes(b"\xff{not json")
    code, _, err = run(["--from", str(card), "--to", str(tmp_path / "archive-garbled")], capsys)
    assert code == 0 and err.count("warning:") == 1 and "unreadable" in err
    assert archived(tmp_path / "archive-garbled") == tree(card)


def test_a_link_on_the_card_that_leads_off_it_is_not_followed(tmp_path, capsys):
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "id_rsa").write_text("secret")
    card = tmp_path / "card"
    write_card(card, boots=1, frames=1)
    (card / "captures" / "with_mask" / "key.jpg").symlink_to(outside / "id_rsa")
    (card / "captures" / "elsewhere").symlink_to(outside, target_is_directory=True)
    archive = tmp_path / "archive"
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0 and "leads outside the card" in err
    assert not any("secret" == p.read_text(errors="replace") for p in archive.rglob("*") if p.is_file())
    assert set(archived(archive)) == {"logs/b000001-p000.log", "captures/with_mask/b000001-s000001.jpg"}


def test_pull_archives_the_cameras_config(tmp_path, capsys):
    root = tmp_path / "camera"
    write_card(root / "sdcard", boots=1, frames=1)
    (root / "sdcard" / "config.json").write_text(json.dumps({"threshold": 0.8, "model_sha256": "ab" * 32}))
    with FakeDevice(root) as device:
        code, out, err = run(["--port", device.port, "--to", str(tmp_path / "archive")], capsys)
    assert code == 0, err
    assert archived(tmp_path / "archive") == tree(root / "sdcard")
    assert json.loads((tmp_path / "archive" / "door-7" / "config.json").read_text())["threshold"] == 0.8


def test_a_mounted_card_with_sets_is_read_by_the_running_sets_config(tmp_path, capsys):
    """Deploys put config.json in tmset/<n>/ (firmware/tmboot.py): the log folder it names is pulled,
    and it is archived as the device's config.json."""
    card = tmp_path / "card"
    write_card(card)
    (card / "logs").rename(card / "journal")
    for number, log_dir in ((1, "logs"), (2, "journal"), (3, "nowhere")):
        folder = card / "tmset" / f"{number:06d}"
        folder.mkdir(parents=True)
        config = json.dumps({"log_dir": log_dir})
        (folder / "config.json").write_text(config)
        if number < 3:  # set 3 was cut off before its manifest: not the running one
            (folder / "set.json").write_text(json.dumps({"files": {"config.json": [len(config), "-"]}}))
    archive = tmp_path / "archive"
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0, err
    pulled = archived(archive)
    assert json.loads(pulled["config.json"]) == {"log_dir": "journal"}
    assert sum(name.startswith("journal/") for name in pulled) == 2


def test_a_linked_set_folder_on_the_card_is_not_read(tmp_path, capsys):
    """Found in review: a tmset folder on the card that links off it had its config.json archived."""
    outside = tmp_path / "secret"
    (outside / "000001").mkdir(parents=True)
    config = json.dumps({"SECRET": "a host file"})
    (outside / "000001" / "config.json").write_text(config)
    (outside / "000001" / "set.json").write_text(json.dumps({"files": {"config.json": [len(config), "-"]}}))
    card = tmp_path / "card"
    write_card(card, boots=1, frames=1)
    (card / "tmset").symlink_to(outside, target_is_directory=True)
    archive = tmp_path / "archive"
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0 and "leads outside the card" in err
    assert not any("SECRET" in p.read_text(errors="replace") for p in archive.rglob("*") if p.is_file())
    assert "logs/b000001-p000.log" in archived(archive)


@pytest.mark.parametrize("name", ["logs/a\\..\\..\\evil.log", "logs/a\x00.log", "logs/c:evil.log", "logs/a\nb.log",
                                  "/etc/passwd", "logs/../x.log", "logs//x.log"])
def test_an_odd_name_the_camera_lists_is_one_line_not_a_path(name):
    from host.errors import UserError
    from tools import pull

    with pytest.raises(UserError, match="odd file name"):
        pull.check_relative(name)
    assert pull.check_relative("logs/b000001-p000.log") == "logs/b000001-p000.log"


def write_card_with_ids(card: Path, boot_id: str, boots: int = 2, frames: int = 3) -> None:
    """As write_card, with the boot ids format-2 firmware writes: one per boot, new after a wipe."""
    write_card(card, boots=boots, frames=frames)
    for boot in range(1, boots + 1):
        log = card / "logs" / f"b{boot:06d}-p000.log"
        first, rest = log.read_text().split("\n", 1)
        header = format_header("door-7", boot, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7",
                               boot_id=f"{boot_id}{boot:02d}")
        log.write_text(header + rest)
        for image in (card / "captures").rglob(f"b{boot:06d}-*.jpg"):
            image.write_bytes(image.read_bytes() + boot_id.encode())  # each card's pictures differ


def test_a_wiped_card_is_archived_beside_the_first_and_both_are_ingested(tmp_path, capsys):
    """Found in review: a wiped card's boot 1 collided with the archived boot 1; the old log became a
    .conflict file that ingest never read, and both runs' records named the same capture files."""
    from host.field.ingest import ingest

    first, second, archive = tmp_path / "card1", tmp_path / "card2", tmp_path / "archive"
    write_card_with_ids(first, "aaaaaaaaaaaaaa")
    write_card_with_ids(second, "bbbbbbbbbbbbbb", boots=1)
    assert run(["--from", str(first), "--to", str(archive)], capsys)[0] == 0
    code, out, err = run(["--from", str(second), "--to", str(archive)], capsys)
    assert code == 0 and "conflict" not in out and "door-7~card2" in err
    assert archived(archive) == tree(first) and archived(archive, "door-7~card2") == tree(second)
    code, out, err = run(["--from", str(first), "--to", str(archive)], capsys)  # the first card again: its own folder
    assert code == 0 and "0 new, 0 updated, 8 unchanged" in out and "~card" not in err
    database = tmp_path / "t.duckdb"
    ingest([archive], database, progress=False, echo=lambda line: None)
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    runs = con.execute("SELECT r.boot_id, count(*), min(f.root) FROM records r JOIN files f ON f.path = r.file "
                       "GROUP BY r.boot_id ORDER BY 1").fetchall()
    con.close()
    assert [(b, n) for b, n, _ in runs] == [("aaaaaaaaaaaaaa01", 4), ("aaaaaaaaaaaaaa02", 4), ("bbbbbbbbbbbbbb01", 4)]
    assert runs[2][2].endswith("door-7~card2") and runs[0][2].endswith("door-7")


@pytest.mark.parametrize("state", ["[]", '{"files": {"logs/b000001-p000.log": 5}}', '{"files": []}', "{not json"])
def test_a_damaged_pull_state_is_rebuilt_not_a_traceback(tmp_path, capsys, state):
    card, archive = tmp_path / "card", tmp_path / "archive"
    write_card(card)
    assert run(["--from", str(card), "--to", str(archive)], capsys)[0] == 0
    (archive / "door-7" / pull.STATE_FILE).write_text(state)
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0 and "rebuilding" in err and archived(archive) == tree(card)


def test_an_archive_that_is_a_file_is_one_line(tmp_path, capsys):
    card = tmp_path / "card"
    write_card(card)
    (tmp_path / "afile").write_text("mine")
    code, out, err = run(["--from", str(card), "--to", str(tmp_path / "afile")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--to" in err and (tmp_path / "afile").read_text() == "mine"


def test_old_logs_deleted_from_a_card_keep_it_in_its_folder(tmp_path, capsys):
    """Found in review: deleting b000001 to free space made the next pull take the card for another one."""
    card, archive = tmp_path / "card", tmp_path / "archive"
    write_card_with_ids(card, "aaaaaaaaaaaaaa", boots=3)
    assert run(["--from", str(card), "--to", str(archive)], capsys)[0] == 0
    (card / "logs" / "b000001-p000.log").unlink()
    code, out, err = run(["--from", str(card), "--to", str(archive)], capsys)
    assert code == 0 and "~card" not in err and "0 new" in out
    assert sorted(p.name for p in archive.iterdir()) == ["door-7"]
