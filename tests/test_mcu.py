"""host.mcu: the board's own libtflm (openmv/libtflm 73eb1aa, Cortex-M7 CMSIS-NN) on an emulated M7."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from host.errors import UserError
from host.mcu import emu, runner

pytest.importorskip("unicorn", reason="unicorn (the CPU emulator) is not installed: pip install -e '.[dev]'")

from host.mcu import __main__ as cli  # noqa: E402
from host.mcu import exact, fpu64, latency, models  # noqa: E402

REFERENCE = models.REFERENCE


@pytest.fixture(scope="module")
def test_inputs(data_dir):
    from host import preprocess

    return preprocess.to_int8_input(models.test_pixels(data_dir, 12))


def tiny_model(per_channel_dense: bool = False) -> bytes:
    import keras
    from keras import layers

    from host.make import quantize

    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(32, 32, 3))
    x = layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dense(3, activation="softmax")(layers.Flatten()(x))
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    return quantize.quantize(keras.Model(inputs, x), pixels, per_channel_dense=per_channel_dense)


def test_thumb2_instruction_lengths():
    # movs r0,#0 (16) ; ldr.w r3,[r2,#3464] (32: f8d2 3d88) ; bx lr (16)
    code = bytes.fromhex("0020") + bytes.fromhex("d2f8883d") + bytes.fromhex("7047")
    assert emu.thumb_instructions(code) == 3


def test_fused_multiply_add_rounds_once():
    a = 1.0 + 2.0**-30
    exact_value = a * a - 1.0  # rounded product: loses the 2**-60 term
    assert fpu64.fma(a, a, -1.0) == 2.0**-29 + 2.0**-60
    assert exact_value != fpu64.fma(a, a, -1.0)


def test_harness_elfs_match_their_manifest():
    manifest = runner.manifest()
    assert manifest["commit"].startswith("73eb1aa")
    assert manifest["variants"]["release"]["library_sha256"] == (
        "815502cfab2dea7710d6448206d8065ad2434666e73c2a9276dd4af645e839e4")
    for v in manifest["variants"].values():
        elf = emu.PACKAGE / "elf" / v["elf"]
        assert hashlib.sha256(elf.read_bytes()).hexdigest() == v["elf_sha256"]


SEPARABLE = ["DEPTHWISE_CONV_2D", "CONV_2D"]
REFERENCE_OPS = {
    "tiny_cnn": ["CONV_2D", "MAX_POOL_2D"] * 3 + ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"],
    "door_cnn_w": ["CONV_2D"] + SEPARABLE + ["MAX_POOL_2D"] + SEPARABLE + ["MAX_POOL_2D"] + SEPARABLE
                  + ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"],
}
REFERENCE_INSTRUCTIONS = {"tiny_cnn": (7_200_000, 7_400_000), "door_cnn_w": (2_600_000, 2_800_000)}  # at 73eb1aa: 7,293,330 / 2,713,946


def test_reference_model_is_bit_exact_and_counted(test_inputs):
    payload = REFERENCE.read_bytes()
    report = exact.compare(payload, test_inputs, with_wheel=False)
    assert report.identical_host == report.total == len(test_inputs), report.lines()
    result = runner.run(payload, test_inputs[:1], count=1)
    ops = [o.op for o in result.ops]
    card = json.loads((REFERENCE.parent / "model_card.json").read_text())
    # The reference's design, as its card names it; the head is a sigmoid unit or a softmax by class count.
    arch = card["training"]["arch"]
    assert arch in REFERENCE_OPS, f"models/tinymask is a {arch}: add its operators and instruction range here"
    assert ops[:-1] == REFERENCE_OPS[arch]
    assert ops[-1] in ("LOGISTIC", "SOFTMAX")
    assert sum(o.instructions for o in result.ops) + result.overhead_instructions == result.instructions
    # the card counted one of the build's images: the same design within a few instructions on another
    assert result.instructions == pytest.approx(card["estimate"]["counted"]["instructions"], rel=1e-4)
    low, high = REFERENCE_INSTRUCTIONS[arch]
    assert low < result.instructions < high
    assert 0 < result.overhead_instructions < 5_000
    assert latency.estimate_ms(result.instructions) == pytest.approx(result.instructions * latency.CYCLES_PER_INSTRUCTION / 480e3)


def test_reference_model_matches_the_board_wheel(test_inputs):
    from host.interp import env

    if not env.is_ready():
        pytest.skip("the board-TFLM wheels are not set up (python -m host.boardtflm setup)")
    report = exact.compare(REFERENCE.read_bytes(), test_inputs, with_host=False)
    assert report.identical_board_wheel == report.total, report.lines()


def test_tiny_model_runs_like_the_host(test_inputs):
    from host.tflm import Int8Model

    payload = tiny_model()
    result = runner.run(payload, test_inputs, count=1)
    host = Int8Model(payload)
    expected = np.stack([host.raw(x) for x in test_inputs])
    assert np.array_equal(result.raw, expected.reshape(result.raw.shape))
    assert [o.op for o in result.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                          "FULLY_CONNECTED", "SOFTMAX"]


def test_refused_model_gives_the_library_message_in_one_line(capsys, tmp_path):
    path = tmp_path / "per_channel.tflite"
    path.write_bytes(tiny_model(per_channel_dense=True))
    with pytest.raises(runner.McuRefusal) as info:
        runner.probe(path.read_bytes())
    assert info.value.board_message == "Failed to allocate tensors"
    assert "per-channel" in info.value.library_message.lower()
    code = cli.run_cli(cli.main, ["run", str(path), "--inputs", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: board libtflm: Failed to allocate tensors: ") and "per-channel" in err.lower()


def test_cli_run_prints_outputs_instructions_and_ops(capsys, tmp_path, test_inputs):
    inputs = tmp_path / "x.npy"
    np.save(inputs, test_inputs[:2])
    assert cli.main(["run", str(REFERENCE), "--inputs", str(inputs), "--ops"]) == 0
    out = capsys.readouterr().out
    card = json.loads((REFERENCE.parent / "model_card.json").read_text())
    counted = card["estimate"]["counted"]["instructions"]
    assert "input 1: raw int8 output" in out and f"instructions per Invoke(): {counted // 1000:,}," in out
    assert "CONV_2D" in out and f"MAC estimate {card['estimate']['inference_ms']:.1f} ms" in out and "s each" in out
    assert cli.main(["run", str(REFERENCE), "--inputs", str(inputs), "--no-count", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["outputs"]) == 2


def test_missing_emulator_and_toolchain_are_one_line(monkeypatch, capsys):
    import builtins
    import shutil

    real_import = builtins.__import__

    def no_unicorn(name, *args, **kwargs):
        if name == "unicorn" or name.startswith("unicorn."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_unicorn)
    with pytest.raises(UserError, match="pip install unicorn"):
        emu.Harness().run(REFERENCE.read_bytes(), None)
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.run_cli(cli.main, ["build"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install gcc-arm-none-eabi" in err


def test_build_script_pins_what_the_manifest_records():
    script = (models.REPO / "mcu" / "build.sh").read_text()
    manifest = runner.manifest()
    assert f"COMMIT={manifest['commit']}" in script
    for v in manifest["variants"].values():
        assert v["library_sha256"] in script


def test_bad_input_size_is_one_line(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(bytes(100))
    with pytest.raises(UserError, match="not a multiple of the model's 3072 input bytes"):
        cli.main(["run", str(REFERENCE), "--inputs", str(bad)])


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04not a model", bytes(64)])
def test_a_file_that_is_not_a_tflite_model_is_one_line(tmp_path, content):
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    inputs = tmp_path / "x.bin"
    inputs.write_bytes(bytes(3072))
    with pytest.raises(UserError, match=r"model.tflite: not a .tflite model \(no TFL3 identifier\)"):
        cli.main(["run", str(path), "--inputs", str(inputs)])
