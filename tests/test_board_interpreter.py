"""Issue 10: the board computes what the host evaluated. The firmware's own TFLM (the tflite-micro
wheels of firmware 4.5.6 and 4.5.7-4.8.1 in .board-tflm/) refuses per-channel dense layers, the
simulator fails where the board fails, and the pixels are imlib's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import simboard
from simboard import MASK, bundle_dir, events, frames_of

from host import preprocess
from host.boards import load_board
from host.errors import run_cli
from host.interp import board as board_interp
from host.interp import firmware
from host.make import build, checks, quantize
from host.make import data as data_mod
from host.make.model import tiny_cnn
from host.sim import SimOptions, simulate
from host.sim.bundle import load as load_sim_bundle

PIXELS = np.random.default_rng(10).integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)


def test_rgb565_expansion_is_imlibs_bit_replication_for_all_65536_values():
    """lib/imlib/imlib.h COLOR_RGB565_TO_R8/G8/B8: (r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4)."""
    values = np.arange(1 << 16, dtype=np.uint32)
    r5, g6, b5 = (values >> 11) & 0x1F, (values >> 5) & 0x3F, values & 0x1F
    expected = np.stack([(r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)], axis=-1)
    assert np.array_equal(preprocess.rgb565_to_rgb888(values.astype(np.uint16)).astype(np.uint32), expected)


@pytest.fixture(scope="module")
def per_channel_model() -> bytes:
    return quantize.quantize(tiny_cnn(), quantize.with_extremes(PIXELS), per_channel_dense=True)


@pytest.fixture(scope="module")
def per_tensor_model() -> bytes:
    return quantize.quantize(tiny_cnn(), quantize.with_extremes(PIXELS))


def test_the_converter_default_is_per_channel_and_the_project_writes_per_tensor(per_channel_model, per_tensor_model):
    from host.interp import flatbuf
    assert [layer.weight_scales for layer in flatbuf.per_channel_dense(per_channel_model)] == [100]
    assert flatbuf.per_channel_dense(per_tensor_model) == []


@pytest.mark.parametrize("version", ["4.5.6", "4.6.0", "4.8.1"])
def test_the_boards_tflm_refuses_per_channel_dense_layers_and_names_the_fix(per_channel_model, version):
    interpreter = firmware.interpreter_for(version, "openmv_h7")
    with pytest.raises(board_interp.BoardRefusal) as refused:
        board_interp.load(per_channel_model, interpreter)
    assert "FULLY_CONNECTED" in str(refused.value) and "per channel (100 scales)" in str(refused.value)
    assert "_experimental_disable_per_channel_quantization_for_dense_layers" in str(refused.value)


def test_the_real_wheel_refuses_it_too_not_only_the_static_rule(per_channel_model):
    """The static rule is skipped: the model goes straight into firmware 4.6.0's tflite-micro wheel."""
    from host.interp import client
    if board_interp.run_mode() != "tflm":
        pytest.skip("no CPython 3.10/3.11 here for the board's tflite-micro wheels")
    with pytest.raises(client.TFLMError) as failed:
        client.load(firmware.interpreter_for("4.6.0", "openmv_h7").commit, per_channel_model)
    assert "per-channel" in (failed.value.log + failed.value.error)


def test_checks_refuse_it_with_one_line(per_channel_model, per_tensor_model):
    board = load_board("openmv_h7")
    bad = checks.failures(checks.run_checks(checks.inspect_model(per_channel_model, board), board))
    assert [c.name for c in bad] == ["board interpreter"]
    assert "per channel" in bad[0].detail and "\n" not in bad[0].detail
    assert not checks.failures(checks.run_checks(checks.inspect_model(per_tensor_model, board), board))


def test_host_build_refuses_a_per_channel_model_and_writes_nothing(monkeypatch, tmp_path, data_dir, capsys):
    real = quantize.quantize
    monkeypatch.setattr(quantize, "quantize", lambda model, pixels, **kw: real(model, pixels, per_channel_dense=True))
    out = tmp_path / "runs"
    code = run_cli(build.main, ["--data", str(data_dir), "--out", str(out), "--limit", "20", "--epochs", "1",
                                "--representative", "20", "--quiet", "--eval-data"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: tinymask") and "board interpreter" in err[-1]
    assert "per channel" in err[-1] and "disable_per_channel" in err[-1]
    assert not (out / "tinymask").exists()


def test_the_reference_bundle_is_bit_identical_in_the_boards_tflm_on_the_whole_test_split():
    card = json.loads((bundle_dir() / "model_card.json").read_text())
    payload = (bundle_dir() / card["model_file"]).read_bytes()
    split, _ = data_mod.load_test_split(data_mod.default_data_dir(), progress=False)
    inputs = preprocess.to_int8_input(split.pixels)
    board = board_interp.load(payload, firmware.interpreter_for("4.6.0", "openmv_h7"))
    from host.tflm import Int8Model
    host = Int8Model(payload)
    on_board = board.raw(inputs)
    on_host = np.stack([host.raw(x) for x in inputs])
    assert len(split) == 599 and np.array_equal(on_board.reshape(on_host.shape), on_host)


def per_channel_bundle(tmp_path, payload):
    """The reference bundle with its model replaced by a per-channel one (card sha256 updated)."""
    import hashlib
    import shutil
    folder = tmp_path / "bundle"
    shutil.copytree(bundle_dir(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / card["model_file"]).write_bytes(payload)
    card["sha256"], card["model_bytes"] = hashlib.sha256(payload).hexdigest(), len(payload)
    (folder / "model_card.json").write_text(json.dumps(card))
    return load_sim_bundle(folder, "openmv_h7")


@pytest.mark.parametrize("version, loads", [("4.5.5", True), ("4.6.0", False), ("4.8.0", False)])
def test_the_simulator_fails_where_the_board_fails(tmp_path, per_channel_model, version, loads):
    """4.6.0 and 4.8.0: ml.Model() raises as on the camera, the door never opens, model_error is
    logged; 4.5.5 (libtf) loads it and computes every dense unit with channel 0's scale."""
    result = simulate(SimOptions(frames=frames_of(MASK, 8), bundle=per_channel_bundle(tmp_path, per_channel_model),
                                 config={"threshold": simboard.THRESHOLD, "debounce_frames": 1, "report_ms": 0,
                                         "recover_ms": 200}, firmware_version=version, max_boots=5,
                                 sd_dir=tmp_path / "sd", flash_dir=tmp_path / "flash"))
    errors = [e.detail for e in events(result, "model_error")]
    if loads:
        assert not errors and result.frames == 8
    else:
        assert errors and "Failed to allocate tensors" in errors[0]
        assert not any(result.relay_active(level) for _, level in result.relay.history)  # the door stays shut


def test_setup_never_removes_a_folder_it_did_not_make(tmp_path, monkeypatch):
    """Found in review: TINYMASK_BOARD_TFLM naming a folder of the user's files had them deleted."""
    from host.errors import UserError
    from host.interp import env

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    monkeypatch.setattr(env, "ENV_DIR", precious)
    monkeypatch.setattr(env, "is_ready", lambda: False)
    with pytest.raises(UserError, match="holds files this command did not make"):
        env.setup(force=True, quiet=True)
    assert (precious / "notes.txt").read_text() == "mine"
    afile = tmp_path / "afile"
    afile.write_text("mine")
    monkeypatch.setattr(env, "ENV_DIR", afile)
    with pytest.raises(UserError, match="is a file"):
        env.setup(force=True, quiet=True)
