"""host.make.zoo designs: registered for host.train, the paper's size ordering, board-runnable int8."""

import numpy as np
import pytest
from keras import layers

from host.boards import load_board
from host.errors import UserError
from host.make import checks, quantize, zoo
from host.make import model as model_mod


def test_zoo_designs_are_registered_and_tiny_cnn_is_unchanged():
    assert set(zoo.ARCHITECTURES) <= set(model_mod.ARCHITECTURES)
    assert model_mod.ARCHITECTURES["tiny_cnn"] is model_mod.tiny_cnn
    reference = model_mod.build("tiny_cnn")
    assert reference.count_params() == 126185 and model_mod.count_macs(reference) == 2904164


def test_parameter_order_follows_the_paper():
    params = {name: model_mod.build(name).count_params() for name in ("squeezenet", "squeezenet_mod", "tiny_cnn", "ds_cnn")}
    assert params["squeezenet"] > params["squeezenet_mod"] > params["tiny_cnn"] > params["ds_cnn"]


def test_modified_squeezenet_has_two_fire_modules_fewer():
    def fires(model):
        return sum(isinstance(layer, layers.Concatenate) for layer in model.layers)

    assert fires(zoo.squeezenet()) == 8 and fires(zoo.squeezenet_mod()) == 6


def test_fire_module_concatenates_both_expands():
    model = zoo.squeezenet()
    concat = model.get_layer("fire2_concat")
    assert concat.output.shape[-1] == 2 * zoo.FIRES[0][1]
    assert model.output.shape[-1] == 1


def test_count_macs_of_a_separable_design_by_hand():
    model = zoo.ds_cnn()
    stem = 16 * 16 * 8 * 27
    block1 = 16 * 16 * 8 * 9 + 16 * 16 * 8 * 32
    block2 = 8 * 8 * 32 * 9 + 8 * 8 * 32 * 64
    block3 = 4 * 4 * 64 * 9 + 4 * 4 * 64 * 64
    head = 4 * 4 * 64 * 16 + 16
    assert model_mod.count_macs(model) == stem + block1 + block2 + block3 + head


@pytest.mark.parametrize("arch", ["squeezenet_mod", "ds_cnn"])
def test_designs_convert_to_board_int8(arch):
    board = load_board("openmv_h7")
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    payload = quantize.quantize(model_mod.build(arch), pixels)
    facts = checks.inspect_model(payload)
    by_name = {c.name: c for c in checks.run_checks(facts, board)}
    assert by_name["operators"].ok, by_name["operators"].detail
    assert by_name["input quantization"].ok
    assert facts.arena_bytes > 0
    if arch == "ds_cnn":
        assert not checks.failures(list(by_name.values()))
        assert "DEPTHWISE_CONV_2D" in facts.ops and facts.model_bytes <= 70_000
    else:
        assert "CONCATENATION" in facts.ops
        assert not by_name["model size"].ok  # SqueezeNets are beyond the H7's model budget


@pytest.mark.parametrize("arch", ["door_cnn", "door_cnn_s1", "door_cnn_w", "door_cnn_g", "door_cnn_e", "door_cnn_f",
                                  "tiny_cnn_n6", "tiny_cnn_n8", "door_cnn_r20"])
def test_door_designs_fit_the_h7_flash_and_the_5_ms_budget(arch):
    """Issue 13: a default candidate is at most 64 KB int8 and at most 5 ms estimated on the H7,
    and passes every board check, three classes included (at its own input size)."""
    board = load_board("openmv_h7")
    size = model_mod.input_size(arch)
    pixels = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    model = model_mod.build(arch, classes=3)
    payload = quantize.quantize(model, pixels)
    facts = checks.inspect_model(payload)
    assert not checks.failures(checks.run_checks(facts, board))
    assert facts.model_bytes <= 64 * 1024
    assert board.inference_ms(model_mod.count_macs(model)) <= 5.0


def test_stride_one_stem_sees_the_full_input():
    model = zoo.door_cnn_s1()
    assert model.get_layer("stem").output.shape[1:3] == (32, 32) and model.get_layer("pool0").output.shape[1:3] == (16, 16)


def test_the_separable_stem_filters_every_pixel_before_pooling():
    model = zoo.door_cnn_f(classes=3)
    assert model.get_layer("stem_dw").output.shape[1:] == (32, 32, 3)
    assert model.get_layer("stem_pw").output.shape[1:] == (32, 32, 8) and model.get_layer("pool0").output.shape[1:3] == (16, 16)


def test_global_max_head_sees_the_whole_map_at_once():
    model = zoo.door_cnn_g(classes=3)
    assert model.get_layer("pool_global").output.shape[1:] == (1, 1, 128)
    assert model.get_layer("head").units == 64


@pytest.mark.parametrize("arch, filters", [("tiny_cnn_n6", (6, 16, 32)), ("tiny_cnn_n8", (8, 12, 32))])
def test_narrow_paper_cnns_keep_its_full_resolution_first_convolution(arch, filters):
    model = model_mod.build(arch, classes=3)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert [c.filters for c in convs] == list(filters) and convs[0].output.shape[1:3] == (32, 32)
    assert [layer.units for layer in model.layers if isinstance(layer, layers.Dense)] == [100, 3]
    assert model.name == arch


def test_every_design_builds_the_input_size_it_declares():
    """The build decodes the pictures before it builds the model: model.input_size must be the side
    the design really takes, 32 for all but issue 13's 48x48 candidate."""
    sizes = {arch: model_mod.input_size(arch) for arch in model_mod.ARCHITECTURES}
    for arch, size in sizes.items():
        assert model_mod.build(arch).input_shape[1:] == (size, size, 3), arch
    assert {a: s for a, s in sizes.items() if s != 32} == {"door_cnn_r20": 48}
    with pytest.raises(UserError, match="unknown architecture 'resnet50'"):
        model_mod.input_size("resnet50")


def test_the_48x48_candidate_pools_its_stride_two_stem_and_keeps_door_cnn_w_blocks():
    model = zoo.door_cnn_r20(classes=3)
    stem = model.get_layer("stem")
    assert model.input_shape[1:] == (48, 48, 3) and stem.strides == (2, 2) and not stem.use_bias
    assert stem.output.shape[1:] == (24, 24, 16) and model.get_layer("pool0").output.shape[1:3] == (12, 12)
    assert [model.get_layer(f"block{i}_pw").output.shape[1:] for i in (1, 2, 3)] == [(12, 12, 32), (6, 6, 96), (3, 3, 128)]
    assert model.get_layer("pool1").output.shape[1:3] == (6, 6) and model.get_layer("pool2").output.shape[1:3] == (3, 3)
    assert model.get_layer("head").units == 20 and model.get_layer("output").units == 3
    assert model.name == "door_cnn_r20" and model_mod.count_macs(model) == 605_724
