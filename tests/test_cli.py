"""The `tinymask` command: lazy dispatch, quiet TensorFlow start-up, one-line errors, Python versions."""

import glob
import importlib.util
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO
from tqdm import tqdm

from host import cli, quiet_import
from host.errors import UserError, run_cli

DOCUMENTED = ["build", "evaluate", "simulate", "deploy", "pull", "dataset", "ingest", "report", "compare"]


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, **kwargs)


def test_console_script_points_at_the_dispatcher():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["tinymask"] == "host.cli:main"
    assert project["requires-python"] == ">=3.11,<3.14"
    assert isinstance(project["license"], str)  # SPDX form, not the deprecated table


def test_every_documented_command_is_a_subcommand_with_an_importable_module():
    assert set(DOCUMENTED) <= set(cli.COMMANDS)
    for name, (module, _) in cli.COMMANDS.items():
        assert importlib.util.find_spec(module) is not None, name
        # the help promises `python -m host.<command>` (tools.<command> for deploy, pull, dataset)
        runnable = f"{'tools' if name in ('deploy', 'pull', 'dataset') else 'host'}.{name}"
        assert importlib.util.find_spec(runnable) is not None, runnable


def test_help_lists_the_commands_without_importing_tensorflow():
    result = run_python(
        "import sys; from host import cli; code = cli.main(['--help']);"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib', 'tflite_micro') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(code)")
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    for name in DOCUMENTED:
        assert f"\n  {name} " in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("name", DOCUMENTED)
def test_each_subcommand_answers_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([name, "--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert cli.main(["biuld"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown command 'biuld'")


def test_subcommand_user_error_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.cli", "evaluate", "--tflite", str(tmp_path / "none.tflite"),
                             "--data", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "none.tflite" in lines[0]


def test_tensorflow_import_prints_no_start_up_noise():
    result = run_python("import host, sys; import tensorflow; print('IMPORTED', file=sys.stderr)")
    assert result.returncode == 0
    assert result.stderr.strip() == "IMPORTED"


def test_noise_filter_keeps_every_other_line():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 port.cc:153] oneDNN custom operations are on. You may see ...\n"
            "E0000 something real went wrong\n"
            "Traceback (most recent call last):\n")
    assert quiet_import.without_noise(text) == "E0000 something real went wrong\nTraceback (most recent call last):\n"


def terminal_view(line: str) -> str:
    """What a terminal shows for one line: each carriage return writes again from the first column."""
    shown: list[str] = []
    for segment in line.split("\r"):
        shown[:len(segment)] = segment
    return "".join(shown)


def test_error_line_starts_a_clean_line_after_a_progress_bar(capsys):
    def failing(argv):
        bar = tqdm(total=100, desc="ingest", file=sys.stderr, mininterval=0, miniters=1)
        bar.update(40)  # a bar updated by hand stays open when an error interrupts it
        raise UserError("data/x.jpg: broken; remove it")

    assert run_cli(failing) == 2
    err = capsys.readouterr().err
    error_line = next(line for line in err.split("\n") if "error:" in line)
    assert terminal_view(error_line).rstrip() == "error: data/x.jpg: broken; remove it"
    assert not getattr(tqdm, "_instances", set())


def test_unsupported_python_gets_one_line():
    others = sorted(glob.glob("/root/.pyenv/versions/3.10*/bin/python3")) + sorted(glob.glob("/usr/bin/python3.1[04]"))
    if not others:
        pytest.skip("no Python outside 3.11-3.13 on this machine")
    result = subprocess.run([others[0], "-c", "import host"], capture_output=True, text=True, cwd=REPO)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1
    assert lines[0].startswith("error: tinymask needs CPython 3.11, 3.12 or 3.13")


# ---- found in review: bad output places and bundle cards are one line, before any work -----------------


@pytest.mark.parametrize("module, extra", [("host.make.build", ["--limit", "4"]), ("host.make.train", ["--limit", "4"]),
                                           ("host.make.evaluate", ["--tflite", "models/tinymask/tinymask.tflite"])])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch, module, extra):
    import importlib

    from host.make import data

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: pytest.fail("data was read before --out was checked"))
    monkeypatch.setattr(data, "load_test_split", lambda *a, **k: pytest.fail("data was read before --out was checked"))
    taken = tmp_path / "afile"
    taken.write_text("mine")
    assert run_cli(importlib.import_module(module).main, ["--out", str(taken), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0] and taken.read_text() == "mine"


@pytest.mark.parametrize("name", ["../../escape", ".hidden", "a/b", "", "x" * 65])
def test_a_bundle_name_that_is_not_a_plain_name_is_refused_before_any_work(tmp_path, capsys, monkeypatch, name):
    from host.make import build, data

    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: pytest.fail("data was read before --name was checked"))
    assert run_cli(build.main, ["--name", name, "--out", str(tmp_path / "out"), "--limit", "4"]) == 2
    assert "--name" in capsys.readouterr().err and not any(tmp_path.parent.glob("escape"))


@pytest.mark.parametrize("card", [[1, 2], {"model_file": 5}, {"model_file": "../outside/secret.tflite"},
                                  {"model_file": "/etc/x.tflite"}, {"model_file": "main.py"}])
def test_a_card_naming_a_model_outside_its_bundle_is_one_line(tmp_path, card):
    import json

    from host.make import bundle

    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.tflite").write_bytes(b"TFL3")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(UserError) as caught:
        bundle.load_model(tmp_path / "b")
    assert "\n" not in str(caught.value) and "model_card.json" in str(caught.value)


def test_a_file_that_is_not_a_model_is_named_before_the_data_is_read(tmp_path, capsys, monkeypatch):
    from host.make import data, evaluate

    monkeypatch.setattr(data, "load_test_split", lambda *a, **k: pytest.fail("data was read before the model"))
    garbage = tmp_path / "photo.tflite"
    garbage.write_bytes(b"\xff\xd8\xff not a model")
    assert run_cli(evaluate.main, ["--tflite", str(garbage), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "photo.tflite: not a valid .tflite model" in err[0]


def test_calibrate_write_refuses_the_committed_reference(tmp_path, capsys):
    """Found in review: `calibrate --limit 8 --write` rewrote the committed reference's card from 16 images."""
    from host.make import calibrate

    reference = REPO / "models" / "tinymask" / "model_card.json"
    before = reference.read_bytes()
    assert run_cli(calibrate.main, ["--limit", "8", "--write"]) == 2
    assert "--publish" in capsys.readouterr().err and reference.read_bytes() == before


@pytest.mark.parametrize("field, value, message", [
    ("data", {"sets": "facemask-v1"}, "data.sets"), ("board", "/tmp/evil.json", "board"),
    ("macs", "lots", "macs"), ("door_expected", [1], "door_expected"), ("sha256", None, "sha256"),
    ("door_expected", {"target_no_face_admitted": "x"}, "target_no_face_admitted")])
def test_a_card_field_of_the_wrong_type_or_leading_off_its_root_is_one_line(tmp_path, field, value, message):
    import json
    import shutil

    from host.make import bundle

    folder = tmp_path / "b"
    shutil.copytree(REPO / "models" / "tinymask", folder)
    card = json.loads((folder / "model_card.json").read_text())
    card[field] = value
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=message) as caught:
        bundle.load_model(folder)
    assert "\n" not in str(caught.value)


def test_quantize_refuses_what_it_cannot_use_in_one_line(tmp_path, capsys):
    """Found in review: a garbage .keras, --samples 0 or below, and an --out that is a folder were tracebacks
    (the last after quantizing) or silently wrote a model from no images."""
    from host.make import quantize

    garbage = tmp_path / "bad.keras"
    garbage.write_bytes(b"not a model")
    for argv, needle in ((["--model", str(garbage)], "not a Keras model"),
                         (["--model", str(garbage), "--samples", "0"], "--samples 0"),
                         (["--model", str(garbage), "--out", str(tmp_path)], "name a .tflite file")):
        assert run_cli(quantize.main, argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]


@pytest.mark.parametrize("field, value", [("model_budget_bytes", "big"), ("supported_ops", "CONV_2D"), ("clock_hz", 0),
                                          ("storage", [1])])
def test_a_board_profile_of_the_wrong_types_is_one_line(tmp_path, field, value):
    """Found in review: "big" was a traceback, a string of ops refused every operator, a 0 Hz clock passed."""
    import json

    from host.boards import load_board

    profile = json.loads((REPO / "boards" / "openmv_h7.json").read_text())
    profile[field] = value
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(UserError, match=field):
        load_board(str(path))


def test_mcu_and_calibrate_name_what_is_wrong(tmp_path, capsys):
    import numpy as np

    from host.make import calibrate
    from host.mcu.__main__ import main as mcu_main

    pickled = tmp_path / "inputs.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    model = str(REPO / "models" / "tinymask" / "tinymask.tflite")
    for argv, needle in ((["run", model, "--inputs", str(pickled)], "not a plain .npy array"),
                         (["run", model, "--inputs", str(pickled), "--limit", "0"], "--limit 0"),
                         (["compare", model, "--limit", "-2"], "--limit -2")):
        assert run_cli(mcu_main, argv) == 2
        assert needle in capsys.readouterr().err
    assert run_cli(calibrate.main, ["--eval-data", str(tmp_path / "nonexist"), "--limit", "4"]) == 2
    assert "--eval-data" in capsys.readouterr().err


@pytest.mark.parametrize("script, argv, needle", [
    ("bench_firmware.py", ["--frames", "0"], "--frames: 0: at least 1"),
    ("bench_firmware.py", ["--bundle", "/nonexistent/bundle"], "no such bundle folder"),
    ("bench_build.py", ["--models-dir"], "--models-dir: name the folder"),
    ("bench_ingest.py", ["--boots", "abc", "--skip-day"], "--boots 'abc'")])
def test_benchmarks_answer_bad_arguments_in_one_line(script, argv, needle):
    """Found in review: a 0 count divided by zero, a missing bundle fell back silently, and argument
    slips were tracebacks."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *argv], capture_output=True,
                            text=True, cwd=REPO, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and needle in lines[-1] and "Traceback" not in result.stderr


def test_card_set_names_never_lead_calibrate_outside_the_shared_sets_and_any_folder_name_loads(tmp_path):
    """Found in review: the check refused a card trained on 'My Photos' or `--data .`; the path rule belongs
    where the name becomes a folder."""
    import json
    import shutil

    from host.make import bundle, calibrate, data

    for sets in (["../../../../etc"], ["My Photos"], [""], ["masks(2024)"]):
        assert calibrate.data_dirs_for({"data": {"sets": sets}}) == data.default_data_dirs()
    folder = tmp_path / "b"
    shutil.copytree(REPO / "models" / "tinymask", folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["data"]["sets"] = ["My Photos", ""]
    (folder / "model_card.json").write_text(json.dumps(card))
    assert bundle.load_model(folder)[0]["data"]["sets"] == ["My Photos", ""]
