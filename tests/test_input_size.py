"""A model input other than 32x32: issue 13's 48x48 candidate (door_cnn_r20) built, checked, simulated,
calibrated and compared like any other design, and every 32x32 path bit for bit what it was."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from host import preprocess
from host.boards import load_board
from host.errors import UserError
from host.framing import real_test_scenes
from host.make import build, bundle, calibrate, checks, compare, evaluate, ood, publish, train
from host.make import data as data_mod
from host.sim import SimOptions, simulate
from host.sim.board import Costs
from host.tflm import Int8Model

SMOKE = ["--arch", "door_cnn_r20", "--limit", "20", "--epochs", "1", "--quiet", "--representative", "20"]


@pytest.fixture(scope="module")
def r20(tmp_path_factory):
    """A smoke build of the 48x48 design with the default recipe (door-small: the shared sets, faces
    door-framed from their 64 px window copies)."""
    out = tmp_path_factory.mktemp("r20")
    assert build.main([*SMOKE, "--out", str(out)]) == 0
    return out / "tinymask"


def model_of(bundle_dir):
    card = bundle.load_card(bundle_dir)
    return card, (bundle_dir / card["model_file"]).read_bytes()


def test_the_48x48_design_builds_as_a_bundle_the_board_interpreter_runs(r20):
    card, payload = model_of(r20)
    assert card["training"]["arch"] == "door_cnn_r20" and card["input_size"] == 48
    assert card["input"]["shape"] == [1, 48, 48, 3] and card["input"]["zero_point"] == -128
    assert card["preprocessing"]["resize"].startswith("bilinear 200x200 -> 48x48 ")
    board = load_board(card["board"])
    facts = checks.inspect_model(payload, board)
    results = {c.name: c for c in checks.run_checks(facts, board)}
    assert all(c.ok for c in results.values()), checks.format_checks(list(results.values()))
    if facts.board_mode == "tflm":
        assert results["board interpreter"].detail.startswith("allocates and invokes in ")
    assert checks.input_size(payload, r20) == 48
    assert card["estimate"]["frame_ms"] == round(board.frame_ms(card["macs"], 48), 2)
    assert card["estimate"]["counted"]["ms"] > 0 and card["model_bytes"] <= 64 * 1024


def test_the_simulated_board_runs_it_and_gives_the_hosts_outputs_for_the_same_frames(r20, tmp_path, data_dir):
    """The firmware's ml.Model.predict draws the window into the model's 48x48; the host decodes the
    same pictures at 48 and runs the same int8 model: the outputs are equal."""
    images = sorted((data_dir / "test" / "with_mask").glob("*.jpg"))[:4] + \
        sorted((data_dir / "test" / "without_mask").glob("*.jpg"))[:4]
    result = simulate(SimOptions(frames=images, bundle=r20, sd_dir=tmp_path / "sd", flash_dir=tmp_path / "flash",
                                 config={"presence_gate": False, "report_ms": 0}))
    assert result.errors() == [] and len(result.predictions) == len(images)
    card, _ = model_of(r20)
    model = Int8Model(r20 / card["model_file"])
    assert model.input_size == 48
    for prediction in result.predictions:
        with Image.open(prediction.path) as picture:
            host = model.scores(preprocess.board_pixels(picture, 48))[0]
        assert list(prediction.outputs) == [float(v) for v in host], prediction.path
    # the field report re-runs captured frames on the host: the board's decisions come back at 48
    from host.field.report import eval as field_eval

    field_bundle = field_eval.load_bundle(r20)
    frames = []
    for prediction in result.predictions:
        label, score = field_eval.decide(prediction.outputs, field_bundle)
        frames.append({"root": str(data_dir), "image": str(prediction.path.relative_to(data_dir)), "label": label,
                       "score": score})
    agreement = field_eval.board_vs_host(frames, field_bundle)
    assert agreement["compared"] == len(images) and agreement["agreement"] == 1.0
    assert agreement["score_abs_diff_max"] == 0.0


def test_calibrate_and_evaluate_decode_every_picture_at_the_bundles_size(r20, tmp_path, data_dir, monkeypatch):
    bundle_dir = tmp_path / "r20"
    bundle_dir.mkdir()
    for path in r20.iterdir():
        (bundle_dir / path.name).write_bytes(path.read_bytes())
    sizes = []
    real = preprocess.window_pixels

    def spy(packed, size=preprocess.INPUT_SIZE):
        sizes.append(size)
        return real(packed, size)

    monkeypatch.setattr(preprocess, "window_pixels", spy)  # every decode, framing, degradation and simulated frame
    card, door = calibrate.calibrate(bundle_dir, limit=5, progress=False)
    assert set(sizes) == {48} and len(sizes) > 100
    assert 0.5 <= door["threshold"] <= 1.0 and door["calibration_framed"] and door["nobody"]["long_run"]["frames"] >= 300
    # the out-of-domain sets a bundle did not train on (here facemask-extra and scenes-negative) at its size too
    splits = ood.eval_splits(data_mod.load_dataset(data_dir, limit=5, progress=False, size=48), limit=3)
    assert {"facemask-extra", "scenes-negative", "facemask-extra" + ood.FRAMED} <= set(splits)
    assert {split.size for split, _ in splits.values()} == {48}
    sizes.clear()
    assert evaluate.main(["--tflite", str(bundle_dir / card["model_file"]), "--data", str(data_dir), "--limit", "3",
                          "--out", str(tmp_path / "eval")]) == 0
    assert set(sizes) == {48} and json.loads((tmp_path / "eval" / "metrics.json").read_text())["int8"]["count"] == 6


def test_the_publish_gate_measures_each_bundle_on_its_own_size_of_the_same_pictures(r20, reference_bundle, data_dir):
    """A 48x48 build against the committed 32x32 reference: each model scores its own pixels of the same
    faces, close up and door-framed in the same scenes and places."""
    scenes = real_test_scenes(data_mod.SHARED_DATASETS / "scenes-negative")[:3]
    close_48, _ = data_mod.load_test_split(data_dir, limit=5, progress=False, size=48)
    framed_48 = ood.door_framed_split(close_48, scenes)
    close_32, _ = data_mod.load_test_split(data_dir, limit=5, progress=False)
    framed_32 = ood.door_framed_split(close_32, scenes)
    assert np.array_equal(framed_48.at(32).pixels, framed_32.pixels)
    reference_card, reference = model_of(reference_bundle)
    assert publish.door_standing("ref", reference, [close_48, framed_48]) == \
        publish.door_standing("ref", reference, [close_32, framed_32])
    _, mine = model_of(r20)
    lines = publish.check_door(reference_bundle, mine, [close_48, framed_48], publish.Gate(force=True))
    assert len(lines) == 2 and lines[0].lstrip().startswith("this build") and "faces' door threshold" in lines[1]
    standing = publish.measure_existing(reference_bundle, reference_card["labels"], close_48, "")
    assert isinstance(standing, publish.Standing) and standing.count == 10
    predicted = evaluate.predicted_labels(evaluate.int8_outputs(reference, close_32.pixels, progress=False))
    assert standing.correct == int((predicted == close_32.labels).sum())


def test_compare_measures_rows_of_each_size_on_their_own_pixels_of_the_same_pictures(tmp_path, data_dir):
    args = ["--data", str(data_dir), "--out", str(tmp_path), "--limit", "8", "--epochs", "1", "--archs", "tiny_cnn",
            "door_cnn_r20", "--prune-rates", "none", "--robust-archs", "--degradations", "low_light", "--quiet",
            "--no-long-runs"]
    assert compare.main(args) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "compare.json").read_text())["rows"]}
    assert list(rows) == ["tiny_cnn", "door_cnn_r20"]
    cards = {name: bundle.load_card(tmp_path / row["bundle"]) for name, row in rows.items()}
    assert [cards[n]["input_size"] for n in rows] == [32, 48]
    assert [cards[n]["input"]["shape"][1:3] for n in rows] == [[32, 32], [48, 48]]
    assert cards["tiny_cnn"]["data"]["test_fingerprint"] == cards["door_cnn_r20"]["data"]["test_fingerprint"]
    assert {n: m["images"] for n, m in rows["tiny_cnn"]["out_of_domain"].items()} == \
        {n: m["images"] for n, m in rows["door_cnn_r20"]["out_of_domain"].items()}
    board = load_board("openmv_h7")
    for name, size in (("tiny_cnn", 32), ("door_cnn_r20", 48)):
        assert rows[name]["frame_ms"] == pytest.approx(board.frame_ms(rows[name]["macs"], size))
        assert set(rows[name]["degraded"]) == {"low_light"} and rows[name]["fits"]


def test_door_framed_pixels_at_32_are_the_fixed_size_codes(data_dir):
    split, _ = data_mod.load_test_split(data_dir, limit=3, progress=False)
    framed = ood.door_framed_split(split, real_test_scenes(data_mod.SHARED_DATASETS / "scenes-negative")[:3])
    # sha256[:16] computed by the code before the input size was a property of the design (6f547ff)
    assert hashlib.sha256(framed.pixels.tobytes()).hexdigest()[:16] == "99d6d8c017ecb1d6"


def test_the_scaling_estimate_grows_with_the_input_pixels():
    board = load_board("openmv_h7")
    macs = 605_724
    d = board.data
    assert board.frame_ms(macs) == d["camera_frame_ms"] + d["scale_ms"] + board.inference_ms(macs) + d["log_ms"]
    assert board.frame_ms(macs, 32) == board.frame_ms(macs)
    assert board.frame_ms(macs, 48) - board.frame_ms(macs) == pytest.approx(d["scale_ms"] * 1.25)
    assert "(S/32)^2" in d["scale_ms_source"] and "UNVERIFIED" in d["scale_ms_source"]
    costs = Costs.for_board("openmv_h7", macs)
    assert costs.scale_ms_for(32) == d["scale_ms"] and costs.scale_ms_for(48) == pytest.approx(2.25 * d["scale_ms"])


def test_training_refuses_pixels_of_another_size_in_one_line():
    with pytest.raises(UserError) as caught:
        train._fresh_model(train.TrainConfig(arch="door_cnn_r20"), 3, 32)
    assert "\n" not in str(caught.value) and "takes 48x48 pictures, the data was decoded at 32x32" in str(caught.value)
