"""host.build end to end on a small subset: the bundle, its card, atomic replacement, user errors."""

import hashlib
import json
import subprocess
import sys

import pytest

from host.make import build, bundle

SMALL = ["--limit", "40", "--epochs", "2", "--quiet", "--representative", "40"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    models = tmp_path_factory.mktemp("models")
    assert build.main(["--data", str(data_dir), "--models-dir", str(models), *SMALL]) == 0
    return models / "tinymask"


def test_bundle_holds_model_labels_card_and_pictures(built):
    names = {p.name for p in built.iterdir()}
    assert {"tinymask.tflite", "tinymask.txt", "model_card.json", "confusion_matrix.png",
            "confusion_matrix.txt", "training_curves.png", "metrics.json"} <= names
    assert (built / "tinymask.txt").read_text().split() == ["without_mask", "with_mask"]
    assert not list(built.parent.glob(".staging-*"))


def test_model_card_describes_the_exact_model(built):
    card = bundle.load_card(built)
    payload = (built / "tinymask.tflite").read_bytes()
    assert card["sha256"] == hashlib.sha256(payload).hexdigest()
    assert card["model_bytes"] == len(payload)
    assert card["input"] == {"shape": [1, 32, 32, 3], "dtype": "int8", "scale": pytest.approx(1 / 255), "zero_point": -128}
    assert card["budgets"]["model_bytes"] == 235520 and card["arena_bytes"] <= card["budgets"]["arena_bytes"]
    assert card["params"] == 126185 and card["macs"] == 2904164
    assert card["estimate"]["fps"] == pytest.approx(1000 / card["estimate"]["frame_ms"], rel=0.01)
    counts = card["data"]["counts"]
    assert sum(counts["test"].values()) == card["metrics"]["int8"]["count"] == 80
    assert len(card["data"]["fingerprint"]) == 64 and card["training"]["seed"] == 1337
    assert card["training"]["refit"] is True and card["training"]["augment"] == "jitter"
    assert card["training"]["schedule"] == "cosine" and card["training"]["dropout"] == 0.1
    matrix = card["metrics"]["int8"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == 80


def test_failed_build_leaves_previous_bundle_untouched(built, tmp_path, data_dir):
    before = {p.name: p.read_bytes() for p in built.iterdir()}
    profile = json.loads((build.DEFAULT_MODELS_DIR.parent / "boards" / "openmv_h7.json").read_text())
    profile["model_budget_bytes"] = 50_000
    board = tmp_path / "tiny_board.json"
    board.write_text(json.dumps(profile))
    result = subprocess.run(
        [sys.executable, "-m", "host.build", "--data", str(data_dir), "--models-dir", str(built.parent),
         "--board", str(board), *SMALL],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: tinymask") and "model size" in last and "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in built.iterdir()} == before
    assert not list(built.parent.glob(".staging-*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/folder"], "does not exist"),
        (["--board", "esp32"], "unknown board"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.build", "--models-dir", str(tmp_path), *args, *SMALL],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())


def test_each_stage_runs_alone(tmp_path, data_dir):
    run = tmp_path / "run"
    common = ["--data", str(data_dir), "--limit", "20"]
    steps = [
        ["host.train", *common, "--epochs", "1", "--out", str(run)],
        ["host.quantize", *common, "--model", str(run / "model.keras"), "--samples", "20", "--out", str(run / "m.tflite")],
        ["host.checks", str(run / "m.tflite"), "--board", "openmv_h7"],
        ["host.evaluate", *common, "--model", str(run / "model.keras"), "--tflite", str(run / "m.tflite"), "--out", str(run / "eval")],
    ]
    for step in steps:
        result = subprocess.run([sys.executable, "-m", *step], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    assert (run / "eval" / "confusion_matrix.png").is_file()
    assert json.loads((run / "eval" / "metrics.json").read_text())["int8"]["count"] == 40
