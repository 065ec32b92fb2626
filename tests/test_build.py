"""host.build end to end on a small subset: the bundle, its card, atomic replacement, user errors."""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_test_faces
from PIL import Image

from host.errors import UserError
from host.make import build, bundle, ood, plots, publish
from host.make import data as data_mod

SMALL = ["--recipe", "paper", "--limit", "40", "--epochs", "2", "--quiet", "--representative", "40"]


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
    from importlib.metadata import version

    packages = card["training"]["packages"]  # what a same-seed rebuild must match to give these bytes
    assert set(packages) >= {"tensorflow-cpu", "keras", "numpy", "pillow", "ai-edge-litert", "tflite-micro"}
    assert packages["keras"] == version("keras") and packages["pillow"] == version("pillow")
    matrix = card["metrics"]["int8"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == 80


def test_card_carries_the_counted_estimate_beside_the_mac_figure(built):
    """Issue 15: the board's libtflm counted on the emulated Cortex-M7, the MAC figure kept beside it."""
    est = bundle.load_card(built)["estimate"]
    counted = est["counted"]
    assert counted["instructions"] > 1_000_000 and counted["ms"] > 0 and est["inference_ms"] > 0
    assert [o["op"] for o in counted["ops"]][0] == "CONV_2D" and "libtflm" in counted["source"]
    assert counted["ms"] == pytest.approx(counted["instructions"] * counted["cycles_per_instruction"] / 480e3, rel=0.01)


def test_card_says_what_the_door_does_when_nobody_is_there(built):
    """Issue 16: the build runs the real main.py on the simulated board over no-face pictures only."""
    nobody = bundle.load_card(built)["nobody"]
    run, gate = nobody["long_run"], nobody["gate"]
    assert run["frames"] >= 300 and run["pictures"] > 0 and run["openings"] >= 0 and 0.0 <= run["open_share"] <= 1.0
    assert run["presence_gate"] is True and gate["calls"] == 9 and gate["gate_ms"] > 0
    assert gate["fps_with"] < gate["fps_without"]


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


# ---- where bundles go, the publish gate, the card's paths ------------------------------------------

TINY = ["--recipe", "paper", "--limit", "20", "--epochs", "1", "--quiet", "--representative", "20"]


def run_build(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "host.build", *args], capture_output=True, text=True, cwd=cwd)


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def test_card_and_metrics_hold_no_machine_paths(built, data_dir):
    for name in ("model_card.json", "metrics.json"):
        for text in strings(json.loads((built / name).read_text())):
            assert not text.startswith("/") and str(data_dir) not in text and str(REPO) not in text, (name, text)
    assert len(bundle.load_card(built)["data"]["test_fingerprint"]) == 64


def test_an_ordinary_build_is_an_experiment_and_the_reference_is_gated():
    parser = argparse.ArgumentParser()
    publish.add_arguments(parser)
    assert publish.destination(parser.parse_args([])) == (Path("runs"), False)
    assert publish.destination(parser.parse_args(["--models-dir", "/tmp/x"])) == (Path("/tmp/x"), False)
    assert publish.destination(parser.parse_args(["--publish"])) == (REPO / "models", True)
    folder, gated = publish.destination(parser.parse_args(["--models-dir", str(REPO / "models" / ".." / "models")]))
    assert gated, "the repository's models/ is gated however it is named"


def test_publish_refuses_a_bundle_measured_on_too_few_images(tmp_path, data_dir):
    result = run_build("--data", str(data_dir), "--publish", "--models-dir", str(tmp_path / "models"), *TINY)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: not published") and "--min-test-images 200" in last and "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "tinymask").exists()


def fake_card(real_card: dict, correct: int, model_bytes: int) -> dict:
    count = real_card["metrics"]["int8"]["count"]
    return {"labels": real_card["labels"], "model_bytes": model_bytes, "data": {"test_fingerprint": "x"},
            "metrics": {"int8": {"accuracy": correct / count, "count": count,
                                 "confusion_matrix": [[correct, 0], [count - correct, 0]]}}}


def test_gate_keeps_a_bundle_that_measures_better_on_the_same_images(built, tmp_path, data_dir):
    shutil.copytree(built, tmp_path / "tinymask")
    split, _ = data_mod.load_test_split(data_dir, limit=40, progress=False)
    real = bundle.load_card(built)
    existing = publish.measure_existing(tmp_path / "tinymask", real["labels"], split, "x")
    assert existing.count == real["metrics"]["int8"]["count"] == len(split)
    assert existing.correct == round(real["metrics"]["int8"]["accuracy"] * len(split))  # its card's own figure
    anything = publish.Gate(min_accuracy=0, min_test_images=0)
    worse = fake_card(real, existing.correct - 1, existing.model_bytes)
    with pytest.raises(UserError, match="measures better"):
        publish.check(tmp_path / "tinymask", worse, split, anything)
    bigger = fake_card(real, existing.correct, existing.model_bytes + 1)
    with pytest.raises(UserError, match="measures better"):
        publish.check(tmp_path / "tinymask", bigger, split, anything)
    forced = publish.Gate(min_accuracy=0, min_test_images=0, force=True)
    assert len(publish.check(tmp_path / "tinymask", worse, split, forced)) == 2
    if existing.correct < existing.count:
        better = fake_card(real, existing.correct + 1, existing.model_bytes)
        assert len(publish.check(tmp_path / "tinymask", better, split, anything)) == 2
    with pytest.raises(UserError, match="--min-accuracy"):
        publish.check(tmp_path / "tinymask", better if existing.correct < existing.count else worse, split,
                      publish.Gate(min_accuracy=1.01, min_test_images=0, force=True))


def test_gate_compares_door_figures_on_out_of_domain_faces_across_label_sets(built, tmp_path, data_dir):
    """With out-of-domain calibration faces the gate keeps the bundle that admits more masked faces
    at <= 1% unmasked, whatever its classes: the committed 2-class reference against a build."""
    from host.make import quantize, zoo

    reference = REPO / "models" / "tinymask"
    shutil.copytree(reference, tmp_path / "tinymask")
    faces, _ = data_mod.load_test_split(data_dir, limit=60, progress=False)
    untrained = quantize.quantize(zoo.door_cnn(classes=3), quantize.representative_pixels(faces, 20, 1))
    card = bundle.load_card(built)
    anything = publish.Gate(min_accuracy=0, min_test_images=0)
    with pytest.raises(UserError, match="better door"):
        publish.check(tmp_path / "tinymask", card, faces, anything, untrained, [faces, faces])
    forced = publish.Gate(min_accuracy=0, min_test_images=0, force=True)
    lines = publish.check(tmp_path / "tinymask", card, faces, forced, untrained, [faces, faces])
    assert len(lines) == 3 and "door threshold" in lines[1] and "door-framed" in lines[2]
    good = (reference / "tinymask.tflite").read_bytes()
    assert publish.door_standing("ref", good, [faces]).rank() > publish.door_standing("u", untrained, [faces]).rank()
    assert len(publish.check(tmp_path / "tinymask", card, faces, anything, good, [faces])) == 3  # a tie in bytes and figure


def test_a_door_that_misses_the_unmasked_target_ranks_below_one_that_meets_it():
    meets = publish.DoorStanding("a", 0.9, [0.50], [0.01], 100)
    misses = publish.DoorStanding("b", 0.996, [0.95], [0.09], 50)
    assert not misses.safe and meets.safe and meets.rank() > misses.rank()
    assert "MISSES" in misses.line() and "MISSES" not in meets.line()
    smaller = publish.DoorStanding("c", 0.9, [0.50], [0.0], 60)
    assert smaller.rank() > meets.rank()  # same figure, fewer bytes


def test_same_seed_gives_the_same_bundle(tmp_path, data_dir):
    for out in ("a", "b"):
        result = run_build("--data", str(data_dir), "--out", str(tmp_path / out), *TINY)
        assert result.returncode == 0, result.stderr[-2000:]
    models = [(tmp_path / out / "tinymask" / "tinymask.tflite").read_bytes() for out in ("a", "b")]
    assert hashlib.sha256(models[0]).hexdigest() == hashlib.sha256(models[1]).hexdigest()
    assert bundle.load_card(tmp_path / "a" / "tinymask")["training"]["deterministic"] is True


def test_prune_makes_a_smaller_deployable_bundle(tmp_path, data_dir):
    result = run_build("--data", str(data_dir), "--out", str(tmp_path), "--prune", "0.5", "--fine-tune-epochs", "1", *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    card = bundle.load_card(tmp_path / "tinymask")
    assert card["training"]["prune"]["rate"] == 0.5 and card["params"] < 126185
    assert sorted(card["training"]["prune"]["filters"].values()) == [8, 16, 32]  # half of tiny_cnn's 16, 32, 64
    assert card["sha256"] == hashlib.sha256((tmp_path / "tinymask" / "tinymask.tflite").read_bytes()).hexdigest()


def test_a_test_only_set_points_to_evaluate(tmp_path, data_dir):
    ondevice = tmp_path / "ondevice"
    rows = ["path,label,split,group"]
    rows += [f"{path},{path.split('/')[0]},test,cam1-b000001" for path in copy_test_faces(data_dir, ondevice, 3)]
    (ondevice / "manifest.csv").write_text("\n".join(rows) + "\n")
    result = run_build("--data", str(ondevice), "--out", str(tmp_path / "runs"), *TINY)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "every image is in the test split" in last and "tinymask evaluate --tflite" in last and "--split none" in last
    assert not (tmp_path / "runs").exists()


def test_evaluate_takes_a_bundle_alone_without_keras(built, tmp_path, data_dir):
    """A two-class bundle before a folder that also holds no-face pictures (issue 16's probe)."""
    folder = tmp_path / "labelled"
    copy_test_faces(data_dir, folder, 5)
    (folder / "none").mkdir()
    for i, colour in enumerate([(0, 0, 0), (250, 250, 245), (200, 180, 150)]):  # covered lens, paper, a wall
        Image.new("RGB", (160, 160), colour).save(folder / "none" / f"field{i}.jpg")
    code = ("import sys; from host.make import evaluate; evaluate.main(['--tflite', sys.argv[1], '--data', sys.argv[2],"
            " '--out', sys.argv[3], '--threshold', '0.8']); print('KERAS', 'keras' in sys.modules or 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(built / "tinymask.tflite"), str(folder), str(tmp_path / "eval")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "KERAS False" in result.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["int8"]["count"] == 13 and metrics["int8"]["labels"] == bundle.load_card(built)["labels"] + ["none"]
    assert metrics["int8"]["per_class"]["none"]["recall"] == 0.0  # a two-class model cannot say "nobody"
    door = metrics["door"]
    assert door["threshold"] == 0.8 and [door[k]["images"] for k in ("unmasked", "masked", "no_face")] == [5, 5, 3]
    assert "no-face pictures admitted" in result.stdout


def test_curves_mark_the_shipped_epoch():
    assert plots.shipped_epoch({"loss": [1, 2, 3], "refit_accuracy": [0.5] * 7}, best_epoch=2)[0] == 7
    assert plots.shipped_epoch({"loss": [1, 2, 3]}, best_epoch=2)[0] == 2


# ---- issue 13: the default recipe is the small door model (door-small) ----------------------------


def test_the_default_recipe_is_door_small_and_its_model_is_sized_for_the_flash(tmp_path, data_dir):
    result = run_build("--data", str(data_dir), "--out", str(tmp_path), "--limit", "20", "--epochs", "1", "--quiet",
                       "--representative", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    card = bundle.load_card(tmp_path / "tinymask")
    training = card["training"]
    assert training["recipe"] == "door-small" and training["arch"] == "door_cnn_w" and training["augment"] == "door"
    assert training["balance"] == "source" and training["refit"] is False and training["epochs"] == 1
    assert training["doorframe_shrink"] == "window"
    assert card["model_bytes"] <= 64 * 1024 and card["estimate"]["inference_ms"] <= 5.0  # the /flash budget
    assert card["door_expected"]["target_unmasked_admitted"] == 0.01 and "target_met" in card["door_expected"]


def test_recipes_choose_their_data_and_flags_override_them(monkeypatch):
    from host.make import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    default = train.config_from_args(parser.parse_args([]))
    door = train.config_from_args(parser.parse_args(["--recipe", "door"]))
    paper = train.config_from_args(parser.parse_args(["--recipe", "paper"]))
    mixed = train.config_from_args(parser.parse_args(["--recipe", "paper", "--arch", "door_cnn", "--no-refit"]))
    small = train.config_from_args(parser.parse_args(["--recipe", "door-small"]))
    assert (small.arch, small.epochs, small.augment, small.balance, small.refit) == ("door_cnn_w", 60, "door", "source", False)
    assert default == small and small.doorframe_shrink == door.doorframe_shrink == "window"
    assert (door.arch, door.epochs, door.augment, door.refit) == ("tiny_cnn", train.RECIPES["door"]["epochs"], "door", False)
    assert (paper.arch, paper.epochs, paper.augment, paper.refit) == ("tiny_cnn", 120, "jitter", True)
    assert (mixed.arch, mixed.refit, mixed.epochs) == ("door_cnn", False, 120)
    assert (small.learning_rate, door.learning_rate, paper.learning_rate) == (2e-3, 2e-3, 1e-3)  # docs/model.md
    slower = train.config_from_args(parser.parse_args(["--learning-rate", "0.001"]))
    assert slower.learning_rate == 1e-3 and slower.arch == "door_cnn_w"
    monkeypatch.delenv("TINYMASK_DATA", raising=False)
    assert train.recipe_data("door") == data_mod.shared_sets() and train.recipe_data("paper") == data_mod.default_data_dirs()
    monkeypatch.setenv("TINYMASK_DATA", "/somewhere/mine")
    assert train.recipe_data("door") == [Path("/somewhere/mine")] == train.recipe_data("door-small")


def test_calibrate_stores_the_door_threshold_and_leaves_the_model_alone(built, tmp_path, data_dir):
    from host.make import calibrate

    bundle_dir = tmp_path / "tinymask"
    shutil.copytree(built, bundle_dir)
    card = bundle.load_card(bundle_dir)
    card.pop("door_threshold", None)
    card.pop("door_expected", None)
    calibrate.write_card(bundle_dir, card)
    model_before = (bundle_dir / "tinymask.tflite").read_bytes()
    assert calibrate.main(["--bundle", str(bundle_dir), "--data", str(data_dir), "--limit", "20", "--write"]) == 0
    after = bundle.load_card(bundle_dir)
    assert 0.5 <= after["door_threshold"] < 1.0 and after["door_expected"]["target_unmasked_admitted"] == 0.01
    assert (bundle_dir / "tinymask.tflite").read_bytes() == model_before and after["sha256"] == card["sha256"]
    assert not list(bundle_dir.glob("*.tmp"))


def test_calibrate_to_a_no_face_target_raises_the_threshold_and_simulates_the_door_at_it(built, tmp_path, data_dir):
    """A stricter door (--max-no-face 0): the threshold admits none of the no-face pictures it was
    measured on, is never below the faces' own, and the long run behind `nobody` used it."""
    from host.make import calibrate

    bundle_dir = tmp_path / "tinymask"
    shutil.copytree(built, bundle_dir)
    assert calibrate.main(["--bundle", str(bundle_dir), "--data", str(data_dir), "--limit", "20",
                           "--max-no-face", "0", "--write"]) == 0
    card = bundle.load_card(bundle_dir)
    expected = card["door_expected"]
    assert expected["target_no_face_admitted"] == 0
    assert card["door_threshold"] >= expected["threshold_for_faces_alone"]
    if expected["no_face_target_met"]:
        assert expected["no_face_admitted"] == 0
    else:  # even the top level admits some: the card says the target was missed
        assert expected["no_face_target_met"] is False and expected["no_face_admitted"] > 0
        assert card["door_threshold"] == pytest.approx(ood.INT8_LEVELS[-1], abs=1e-6)
    assert card["nobody"]["long_run"]["threshold"] == pytest.approx(card["door_threshold"])


@pytest.mark.parametrize("share", ["-0.1", "1.5"])
def test_a_no_face_target_outside_zero_to_one_is_one_line(share, tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.cli", "calibrate", "--bundle", str(tmp_path),
                             "--max-no-face", share], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--max-no-face" in result.stderr.strip().splitlines()[-1]


def test_calibrate_without_data_takes_the_sets_the_card_names(monkeypatch):
    from host.make import calibrate

    monkeypatch.delenv("TINYMASK_DATA", raising=False)
    three = {"data": {"sets": ["facemask-v1", "facemask-extra", "scenes-negative"]}}
    assert calibrate.data_dirs_for(three) == [data_mod.SHARED_DATASETS / n for n in three["data"]["sets"]]
    for card in ({"data": {"sets": ["facemask-v1", "my-own-folder"]}}, {}, {"data": "odd"}, {"data": {"sets": 3}}):
        assert calibrate.data_dirs_for(card) == [data_mod.DEFAULT_DATA]  # not all here: facemask-v1
    monkeypatch.setenv("TINYMASK_DATA", "/somewhere/else")
    assert calibrate.data_dirs_for(three) == [data_mod.SHARED_DATASETS / n for n in three["data"]["sets"]]
    assert calibrate.data_dirs_for({"data": {"sets": ["my-own-folder"]}}) == [Path("/somewhere/else")]


def test_calibrate_without_a_bundle_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.cli", "calibrate", "--bundle", str(tmp_path / "nothing")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and "--bundle" in result.stderr


def test_card_names_the_cpu_and_its_instruction_sets_the_kernels_chose_by(tmp_path):
    from host.make.card import machine_facts

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n"
                       "processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: fpu\n")
    facts = machine_facts(cpuinfo)
    assert facts["cpu"] == "Some CPU 9000" and facts["simd"] == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
    assert machine_facts(tmp_path / "missing")["simd"] == []  # not Linux: still a card, without the flags
