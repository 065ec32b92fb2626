"""host.compare: Pareto fronts (pure), the crash-safe arena search, user errors, a small real run."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from host import tflm
from host.make import compare, evaluate, quantize
from host.make import model as model_mod


def dominates(a, b, maximize):
    better_or_equal = all((x >= y) if m else (x <= y) for x, y, m in zip(a, b, maximize))
    return better_or_equal and a != b


points = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda p: (float(p[0]), float(p[1]))),
                  min_size=1, max_size=25)


@given(points, st.tuples(st.booleans(), st.booleans()))
def test_pareto_front_is_exactly_the_undominated_points(pts, maximize):
    front = set(compare.pareto_front(pts, maximize))
    for i, p in enumerate(pts):
        dominated = any(dominates(q, p, maximize) for q in pts)
        assert (i in front) == (not dominated)
    assert front  # a finite non-empty set always has an undominated point


def test_pareto_front_by_hand():
    # (fps, accuracy): the 3rd is slower and less accurate than the 2nd; the 4th duplicates the 1st.
    pts = [(10, 0.97), (40, 0.96), (30, 0.95), (10, 0.97), (80, 0.90), (float("nan"), 0.99)]
    assert compare.pareto_front(pts) == [0, 1, 3, 4]
    # (bytes, accuracy): fewer bytes is better.
    assert compare.pareto_front([(100, 0.9), (50, 0.9), (200, 0.95)], (False, True)) == [1, 2]


def test_arena_search_survives_a_model_that_crashes_tflm_when_starved():
    # SqueezeNet segfaults TFLM's Python interpreter at an 8 KiB arena; the search probes in child
    # processes, so this process survives and gets the smallest arena that runs.
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    payload = quantize.quantize(model_mod.build("squeezenet"), pixels)
    arena = tflm.arena_bytes(payload)
    assert arena > 8192
    tflm.Int8Model(payload, arena_size=arena).scores(pixels[0])


def small_config(**changes):
    config = dict(archs=["ds_cnn", "ds_cnn:jitter", "tiny_cnn"], prune_rates=[0.5], prune_methods=["one-shot", "iterative"],
                  robust_archs=["ds_cnn", "tiny_cnn"], prune_sources=["tiny_cnn"], epochs=1, fine_tune_epochs=1,
                  iterative_steps=2, degradations=[], augment="flip", seed=1, board="openmv_h7", limit=None)
    return compare.CompareConfig(**{**config, **changes})


def test_plan_puts_the_reference_first_and_names_rows():
    names = [c.name for c in compare.plan(small_config())]
    assert names == ["tiny_cnn", "ds_cnn", "ds_cnn_jitter", "ds_cnn_robust", "tiny_cnn_robust",
                     "tiny_cnn_pruned50_oneshot", "tiny_cnn_pruned50_iterative"]


def test_plan_prunes_each_source_with_its_own_augmentation():
    rows = compare.plan(small_config(prune_sources=["tiny_cnn", "tiny_cnn_robust"], prune_methods=["iterative"]))
    pruned = {c.name: c for c in rows if c.kind == "pruned"}
    assert set(pruned) == {"tiny_cnn_pruned50_iterative", "tiny_cnn_robust_pruned50_iterative"}
    assert pruned["tiny_cnn_robust_pruned50_iterative"].augment == "robust"
    assert pruned["tiny_cnn_robust_pruned50_iterative"].prune_source == "tiny_cnn_robust"
    with pytest.raises(compare.UserError, match="not a row of this run"):
        compare.plan(small_config(prune_sources=["squeezenet"]))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--archs", "resnet50"], "unknown architecture 'resnet50'"),
        (["--archs", "ds_cnn:sepia"], "unknown augmentation 'sepia'"),
        (["--prune-rates", "1.5"], "must be between 0 and 1"),
        (["--prune-rates", "half"], "not a number"),
        (["--degradations", "fog"], "unknown degradation 'fog'"),
        (["--board", "esp32"], "unknown board"),
        (["--prune-sources", "ds_cnn_robust", "--robust-archs"], "not a row of this run"),
        (["--archs", "squeezenet", "--prune-sources", "squeezenet"], "cannot prune squeezenet"),
        (["--degradations"], "--degradations: name at least one"),  # found in review: crashed after training
        (["--prune-rates", "0.251", "0.254"], "row tiny_cnn_pruned25_oneshot is asked for twice"),
        (["--prune-methods", "one-shot", "one-shot"], "is asked for twice"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path, capsys):
    assert compare.run_cli(compare.main, ["--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_command_line_entry_point_reports_errors_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.compare", "--out", str(tmp_path), "--prune-rates", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --prune-rates 0")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("compare")
    args = ["--data", str(data_dir), "--out", str(out), "--limit", "12", "--epochs", "1", "--fine-tune-epochs", "1",
            "--iterative-steps", "2", "--archs", "tiny_cnn", "squeezenet_mod", "ds_cnn",
            "--prune-rates", "0.5", "--robust-archs", "ds_cnn", "--degradations", "low_light", "scale", "--quiet"]
    assert compare.main(args) == 0
    return out


def test_small_run_writes_table_picture_and_models(small_run):
    names = {p.name for p in small_run.iterdir()}
    assert {"compare.json", "compare.csv", "compare.md", "compare.png", "models"} <= names
    report = json.loads((small_run / "compare.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["tiny_cnn", "squeezenet_mod", "ds_cnn", "ds_cnn_robust", "tiny_cnn_pruned50_oneshot",
                          "tiny_cnn_pruned50_iterative"]
    for name, row in rows.items():
        bundle_dir = small_run / row["bundle"]
        assert bundle_dir == small_run / "models" / name
        assert (bundle_dir / f"{name}.tflite").stat().st_size == row["int8_bytes"]
        card = json.loads((bundle_dir / "model_card.json").read_text())
        assert card["door_threshold"] == pytest.approx(row["door_threshold"], abs=1e-6) and card["sha256"] and card["labels"] == report["labels"]
        assert set(row["degraded"]) == {"low_light", "scale"}
        assert row["degraded_int8_accuracy"] == pytest.approx(np.mean(list(row["degraded"].values())))
        assert row["inference_fps"] == pytest.approx(1000 / row["inference_ms"])
        assert row["frame_ms"] > row["inference_ms"] and row["float32_bytes"] > row["int8_bytes"]
        assert set(row["int8_per_class"]) == {"without_mask", "with_mask"}
        assert row["fits"] == all(c["ok"] for c in row["checks"])
    assert report["paper_size_order"]["measured_int8_bytes"] == ["squeezenet_mod", "tiny_cnn"]
    assert not rows["squeezenet_mod"]["fits"] and rows["tiny_cnn"]["fits"]
    run = rows["tiny_cnn"]["nobody"]["long_run"]  # issue 16: the row's own long run of no-face pictures
    card = json.loads((small_run / "models" / "tiny_cnn" / "model_card.json").read_text())
    assert run["frames"] >= 300 and run["presence_gate"] and 0.0 <= run["open_share"] <= 1.0
    from host.sim.bundle import load, render

    debounce = render(load(small_run / "models" / "tiny_cnn", "openmv_h7"), "openmv_h7", {})["debounce_frames"]
    assert run["openings"] <= run["frames"] // debounce  # each opening needs a streak of debounce frames
    assert card["nobody"]["long_run"] == run  # the bundle's card carries what the table shows
    assert f"| {run['openings']} over {run['frames']:,} frames | models/tiny_cnn |" in (small_run / "compare.md").read_text()
    csv_rows = {r["name"]: r for r in csv.DictReader(open(small_run / "compare.csv"))}
    assert int(csv_rows["tiny_cnn"]["nobody_openings"]) == run["openings"]
    assert "error" in rows["squeezenet_mod"]["nobody"]  # too big for the simulated board: no door figures, said so
    pruned_card = json.loads((small_run / "models" / "tiny_cnn_pruned50_oneshot" / "model_card.json").read_text())
    assert pruned_card["training"]["arch"] == "tiny_cnn" and pruned_card["training"]["epochs"] == 1  # the source's
    assert pruned_card["training"]["prune"] == {"rate": 0.5, "method": "one-shot", "source": "tiny_cnn",
                                                "filters": rows["tiny_cnn_pruned50_oneshot"]["filters"],
                                                "fine_tune_epochs": 1}
    pruned = rows["tiny_cnn_pruned50_oneshot"]
    assert pruned["filters"] == rows["tiny_cnn_pruned50_iterative"]["filters"] and list(pruned["filters"].values()) == [8, 16, 32]
    assert pruned["macs"] < rows["tiny_cnn"]["macs"] and pruned["params"] < rows["tiny_cnn"]["params"]
    assert pruned["fits"] and pruned["prune_source"] == "tiny_cnn" and rows["ds_cnn_robust"]["augment"] == "robust"
    assert set(report["pareto"]["accuracy_vs_int8_bytes"]) <= set(rows)
    assert set(report["targets"]["rows"]) == set(rows) - {"tiny_cnn"}


def test_small_run_csv_and_markdown_agree_with_the_json(small_run):
    report = json.loads((small_run / "compare.json").read_text())
    with open(small_run / "compare.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == [r["name"] for r in report["rows"]]
    assert float(table[0]["int8_accuracy"]) == pytest.approx(report["rows"][0]["int8_accuracy"])
    assert "int8_with_mask_f1" in table[0] and "int8_scale_accuracy" in table[0]
    md = (small_run / "compare.md").read_text()
    # main table, degradation table and out-of-domain door table (one row each)
    assert md.count("\n| tiny_cnn_pruned50_oneshot |") == 3
    assert "Out-of-domain door figures" in md
    assert "Pareto front" in md and "no: model size" in md


@given(st.integers(0, 1000), st.integers(1, 1000))
def test_wilson_interval_brackets_the_accuracy(correct, total):
    correct = min(correct, total)
    low, high = evaluate.wilson_interval(correct, total)
    assert 0.0 <= low <= correct / total <= high <= 1.0


def test_wilson_interval_by_hand():
    low, high = evaluate.wilson_interval(579, 599)  # 96.66% on facemask-v1/test
    assert low == pytest.approx(0.9491, abs=5e-4) and high == pytest.approx(0.9783, abs=5e-4)
