"""`tinymask evaluate`'s door figures: what the door would do with each picture of a user's folder,
decided as the firmware decides a frame."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, copy_test_faces
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from host import gate, preprocess
from host.errors import UserError
from host.make import data as data_mod
from host.make import evaluate

SOFTMAX = {"output_kind": "softmax", "labels": ["without_mask", "with_mask", "none"], "positive_label": "with_mask"}
FRAME = preprocess.camera_window_rgb565(Image.new("RGB", (200, 200), (90, 60, 40)))


def split_of(labels: list[int]) -> data_mod.Split:
    n = len(labels)
    return data_mod.Split(np.zeros((n, 32, 32, 3), np.uint8), np.array(labels, int), np.arange(n),
                          [f"p{i}.jpg" for i in range(n)], ["s"] * n)


int8_softmax = st.lists(st.integers(0, 255), min_size=3, max_size=3).map(lambda v: [x / 256 for x in v])


@settings(max_examples=150, deadline=None)
@given(outputs=st.lists(int8_softmax, min_size=1, max_size=12), threshold=st.integers(0, 256).map(lambda k: k / 256),
       data=st.data())
def test_a_picture_is_admitted_exactly_when_the_firmware_admits_its_frame(outputs, threshold, data):
    labels = data.draw(st.lists(st.integers(0, 2), min_size=len(outputs), max_size=len(outputs)))
    door = evaluate.door_admission(np.array(outputs, np.float32), split_of(labels), threshold)
    judge = gate.DoorJudge(gate.gate_config({**SOFTMAX, "threshold": threshold}))
    firmware = [judge.masked(FRAME, out, gate=False) for out in outputs]
    for name, cls in evaluate.DOOR_CLASSES:
        members = [f for f, t in zip(firmware, labels) if t == cls]
        if members:
            assert door[name]["images"] == len(members)  # every picture counted once, in its own class
            assert door[name]["admitted"] == sum(members)
            low, high = door[name]["ci95"]
            assert 0.0 <= low <= door[name]["share"] <= high <= 1.0
        else:
            assert name not in door
    for name, cls in (("unmasked", 0), ("no_face", 2)):
        assert door[f"{name}_admitted_files"] == [f"p{i}.jpg" for i, (f, t) in enumerate(zip(firmware, labels)) if f and t == cls]


def test_a_sigmoid_model_is_admitted_on_its_score_alone():
    door = evaluate.door_admission(np.array([[0.9], [0.7], [0.2]], np.float32), split_of([0, 1, 1]), 0.8)
    assert (door["unmasked"]["admitted"], door["masked"]["admitted"], door["masked"]["images"]) == (1, 0, 2)
    assert door["unmasked_admitted_files"] == ["p0.jpg"]


@pytest.mark.parametrize("given_value", [-0.1, 1.5, float("nan")])
def test_a_threshold_outside_zero_to_one_is_refused_in_one_line(given_value):
    with pytest.raises(UserError, match="--threshold"):
        evaluate.door_threshold_of({"door_threshold": 0.7}, given_value)


@pytest.mark.parametrize("stored", ["0.7", 1.5, True, [0.7]])
def test_a_card_with_a_broken_door_threshold_is_refused_in_one_line(stored):
    with pytest.raises(UserError, match="door_threshold .* calibrate --write"):
        evaluate.door_threshold_of({"door_threshold": stored}, None)


def test_the_threshold_is_the_cards_unless_given():
    assert evaluate.door_threshold_of({"door_threshold": 0.7}, None) == (0.7, "the model card's door_threshold")
    assert evaluate.door_threshold_of({"door_threshold": 0.7}, 0.9) == (0.9, "--threshold")
    assert evaluate.door_threshold_of({"labels": ["a", "b"]}, None)[0] is None
    assert evaluate.door_threshold_of(None, None)[0] is None


def test_the_reference_on_a_users_folder_prints_and_keeps_the_door_figures(tmp_path, data_dir, reference_bundle):
    """A folder as a user brings it (class subfolders, no manifest), faces and no-face pictures."""
    folder = tmp_path / "mine"
    copy_test_faces(data_dir, folder, 6)
    negatives = data_mod.SHARED_DATASETS / "scenes-negative"
    (folder / "none").mkdir()
    rows = [r for r in csv.DictReader((negatives / "manifest.csv").open()) if r["split"] == "test"][:6]
    for row in rows:
        shutil.copy(negatives / row["path"], folder / "none" / row["path"].replace("/", "_"))
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "-m", "host.evaluate", "--tflite", str(reference_bundle / "tinymask.tflite"),
                             "--data", str(folder), "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((reference_bundle / "model_card.json").read_text())
    door = json.loads((out / "metrics.json").read_text())["door"]
    assert door["threshold"] == card["door_threshold"]
    assert [door[k]["images"] for k in ("unmasked", "masked", "no_face")] == [6, 6, 6]
    assert f"door at threshold {card['door_threshold']:.3f} (the model card's door_threshold" in result.stdout
    assert "unmasked faces admitted" in result.stdout and "no-face pictures admitted" in result.stdout
    stricter = subprocess.run([sys.executable, "-m", "host.evaluate", "--tflite", str(reference_bundle / "tinymask.tflite"),
                               "--data", str(folder), "--out", str(out), "--threshold", "0.99"],
                              capture_output=True, text=True, cwd=REPO)
    assert stricter.returncode == 0, stricter.stderr[-2000:]
    strict = json.loads((out / "metrics.json").read_text())["door"]
    for name in ("unmasked", "masked", "no_face"):  # a higher threshold never admits more
        assert strict[name]["admitted"] <= door[name]["admitted"]


@pytest.mark.parametrize("labels, outputs, true, expected", [
    (["without_mask", "with_mask"], 3, [0, 1], ["without_mask", "with_mask", "none"]),  # a 3-output model, no card
    (["without_mask", "with_mask"], 1, [0, 1, 2], ["without_mask", "with_mask", "none"]),  # no-face pictures, 2 classes
    (["without_mask", "with_mask", "none"], 3, [0, 1], ["without_mask", "with_mask", "none"]),
    (["without_mask", "with_mask"], 1, [], ["without_mask", "with_mask"]),
])
def test_the_labels_cover_every_class_the_model_answers_or_the_folder_holds(labels, outputs, true, expected):
    assert evaluate.labels_for(labels, np.zeros((1, outputs)), np.array(true, int)) == expected


def test_card_labels_that_are_not_a_list_of_names_are_one_line(tmp_path):
    """Found in review: "labels": "without_mask" was read letter by letter as the classes."""
    import json

    from host.errors import UserError
    from host.make import evaluate

    (tmp_path / "model_card.json").write_text(json.dumps({"labels": "without_mask"}))
    with pytest.raises(UserError, match="labels 'without_mask' are not a list"):
        evaluate.bundle_card(tmp_path / "m.tflite")
