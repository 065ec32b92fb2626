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


def square_model(height: int, width: int) -> bytes:
    """A small int8 model of an height x width input, quantized as host.quantize does."""
    model = keras.Sequential([keras.Input((height, width, 3)), layers.Conv2D(4, 3, strides=2, activation="relu"),
                              layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    pixels = RNG.integers(0, 256, size=(8, height, width, 3), dtype=np.uint8)
    return quantize.quantize(model, quantize.with_extremes(pixels))


@pytest.mark.parametrize("side", [16, 48, 64])
def test_a_square_input_from_16_to_64_is_what_the_board_scales_the_window_into(side):
    payload = square_model(side, side)
    facts = checks.inspect_model(payload)
    assert facts.input["shape"] == [1, side, side, 3]
    assert not checks.failures(checks.run_checks(facts, load_board("openmv_h7")))
    assert checks.input_size(payload) == side


@pytest.mark.parametrize(("height", "width"), [(100, 100), (32, 48), (8, 8)])
def test_an_input_the_board_cannot_be_fed_is_refused_in_one_line_naming_the_file_and_the_fix(height, width, tmp_path):
    path = tmp_path / "odd.tflite"
    path.write_bytes(square_model(height, width))
    with pytest.raises(UserError) as caught:
        checks.main([str(path)])
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path} refused: ")
    assert f"input quantization: int8 [1, {height}, {width}, 3]" in message
    assert "int8 [1,S,S,3] with S from 16 to 64" in message and "host.make.model.input_size" in message
    with pytest.raises(UserError) as caught:  # calibrate, evaluate, publish: the size a bundle is measured at
        checks.input_size(path.read_bytes(), path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"{path}: input [1, {height}, {width}, 3]: ")
    assert "python -m host.build --arch" in str(caught.value)
