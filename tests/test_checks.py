"""Board checks on real int8 models converted by TensorFlow and sized by TFLM."""

import json

import keras
import numpy as np
import pytest
from keras import layers

from host import tflm
from host.boards import load_board
from host.errors import UserError
from host.make import checks, quantize
from host.make.model import count_macs, tiny_cnn

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def good_model() -> bytes:
    return quantize.quantize(tiny_cnn(), quantize.with_extremes(PIXELS))


def custom_board(tmp_path, **changes):
    profile = json.loads(json.dumps(load_board("openmv_h7").data))
    profile.update(changes)
    path = tmp_path / "board.json"
    path.write_text(json.dumps(profile))
    return load_board(str(path))


def test_reference_design_passes_every_check(good_model):
    facts = checks.inspect_model(good_model)
    result = checks.run_checks(facts, load_board("openmv_h7"))
    assert all(c.ok for c in result), checks.format_checks(result)
    assert facts.input == {"shape": [1, 32, 32, 3], "dtype": "int8", "scale": pytest.approx(1 / 255), "zero_point": -128}
    assert facts.output["dtype"] == "int8"
    assert 4096 < facts.arena_bytes < 65536


def test_arena_size_is_the_smallest_that_runs(good_model):
    arena = checks.inspect_model(good_model).arena_bytes
    tflm.Int8Model(good_model, arena_size=arena).scores(PIXELS[0])
    with pytest.raises((RuntimeError, ValueError)), tflm.quiet_stderr():
        tflm.Int8Model(good_model, arena_size=arena - 1024).scores(PIXELS[0])


def test_over_budget_model_is_refused(good_model, tmp_path):
    board = custom_board(tmp_path, model_budget_bytes=100_000)
    result = checks.run_checks(checks.inspect_model(good_model), board)
    assert [c.name for c in checks.failures(result)] == ["model size"]
    with pytest.raises(UserError, match="model size"):
        checks.refuse_if_failed(result, "m")


def test_arena_over_budget_is_refused(good_model, tmp_path):
    board = custom_board(tmp_path, arena_budget_bytes=8192)
    result = checks.run_checks(checks.inspect_model(good_model), board)
    assert [c.name for c in checks.failures(result)] == ["tensor arena"]


def test_input_quantization_other_than_pixel_minus_128_is_refused():
    # Representative data that never reaches white gives a scale other than 1/255.
    dim = (PIXELS // 2).astype(np.uint8)
    payload = quantize.quantize(tiny_cnn(), dim)
    result = checks.run_checks(checks.inspect_model(payload), load_board("openmv_h7"))
    assert [c.name for c in checks.failures(result)] == ["input quantization"]
    assert "pixel-128" in checks.failures(result)[0].detail


def test_unsupported_operator_is_refused():
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(4, 3, activation="tanh"),
                              layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    payload = quantize.quantize(model, quantize.with_extremes(PIXELS))
    failed = checks.failures(checks.run_checks(checks.inspect_model(payload), load_board("openmv_h7")))
    assert [c.name for c in failed] == ["operators"] and "TANH" in failed[0].detail


def test_mac_count_of_the_reference_design():
    # conv 32*32*16*27 + 16*16*32*144 + 8*8*64*288, dense 1024*100 + 100
    assert count_macs(tiny_cnn()) == 442_368 + 1_179_648 + 1_179_648 + 102_400 + 100


def test_not_a_model_is_a_clear_error():
    with pytest.raises(UserError, match="not a valid .tflite"):
        checks.inspect_model(b"definitely not a flatbuffer")
