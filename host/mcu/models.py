"""The int8 models the emulator is measured on: the reference bundle, every design `host.compare`
offers (host.make.model.ARCHITECTURES, untrained: bit-exactness and instruction counts do not
need trained weights, but calibration uses real test images), and the two published calibration
networks (host.mcu.latency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host import preprocess
from host.errors import UserError

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "models" / "tinymask" / "tinymask.tflite"


def test_pixels(data_dir: Path, limit: int = 300) -> np.ndarray:
    """Board pixels (n, 32, 32, 3) of up to `limit` test images, alternating the two classes."""
    from host.make import data

    test = Path(data_dir) / "test"
    per_class = [sorted((test / label).glob("*")) for label in ("with_mask", "without_mask")]
    if not any(per_class):
        raise UserError(f"{test}: no test images (expected test/with_mask and test/without_mask)")
    paths = [p for pair in zip(*per_class) for p in pair]
    longer = max(per_class, key=len)
    paths += longer[len(min(per_class, key=len)):]
    return np.stack([preprocess.board_pixels(data.load_image(p)) for p in paths[:limit]])


def architecture(arch: str, pixels: np.ndarray, seed: int = 1337) -> bytes:
    """An untrained int8 .tflite of `arch`, calibrated on `pixels` (as host.quantize does)."""
    from host.make import model as model_mod
    from host.make import quantize

    base, _, pruned = arch.partition("_pruned")
    model = model_mod.build(base, seed=seed)
    if pruned:  # host.compare's pruned rows: "tiny_cnn_pruned25" (one-shot and iterative share the shapes)
        from host.make import prune

        model = prune.prune_by_rate(model, int(pruned.split("_")[0]) / 100)
    return quantize.quantize(model, quantize.with_extremes(pixels))


def cmsis_nn_cifar10(seed: int = 1337) -> bytes:
    """The CIFAR-10 CNN of Lai, Suda and Chandra (2018, arXiv 1801.06601, section 4): conv 5x5x32,
    max pool 3x3/2, conv 5x5x32, max pool, conv 5x5x64, max pool, dense 10 (about 12.3 M MACs)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(32, 32, 3))
    x = inputs
    for filters in (32, 32, 64):
        x = layers.Conv2D(filters, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(x))
    return _quantize(keras.Model(inputs, outputs), (32, 32, 3), seed)


def mobilenet_v1_025_96(seed: int = 1337, channels: int = 3) -> bytes:
    """MobileNet v1, width 0.25, 96x96x3 input, 2 classes: the visual-wake-words network (MLPerf
    Tiny VWW), about 7.5 M MACs."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNet(input_shape=(96, 96, channels), alpha=0.25, weights=None,
                                        include_top=False, pooling="avg")
    # Untrained, the activations fade through the 27 layers (int8 scales near 1e-8), and softmax's
    # prepare then refuses its input scale (TFLITE_CHECK in PreprocessSoftmaxScaling, the board would
    # hang). So the head stops at the logits: a dense layer, 256 x 2 MACs; softmax over two values
    # costs a few hundred instructions.
    outputs = layers.Dense(2)(base.output)
    return _quantize(keras.Model(base.input, outputs), (96, 96, channels), seed)


def mobilenet_v1_025_96_gray(seed: int = 1337) -> bytes:
    """The same on 96x96x1 grayscale: TFLM's person_detect model, the one built into OpenMV firmware."""
    return mobilenet_v1_025_96(seed, channels=1)


def _quantize(model, shape, seed) -> bytes:
    from host.make import quantize

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (16,) + shape, dtype=np.uint8)
    return quantize.quantize(model, pixels)


def macs(payload: bytes) -> int:
    """Multiply-accumulates of one inference from the .tflite itself (conv, depthwise, dense)."""
    from ai_edge_litert import schema_py_generated as schema

    from host.interp import flatbuf

    m = flatbuf.parse(payload)
    g = m.subgraphs[0]
    total = 0
    for op in g.operators:
        name, _ = flatbuf.op_name(m, op.opcodeIndex)
        out = g.tensors[op.outputs[0]].shape
        w = g.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else None
        if name == "CONV_2D":
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif name == "DEPTHWISE_CONV_2D":
            total += int(np.prod(out)) * int(w[1] * w[2])
        elif name == "FULLY_CONNECTED":
            total += int(np.prod(out)) * int(w[-1])
    del schema
    return total


def truncate(payload: bytes, keep_ops: int) -> bytes:
    """The model cut after its first `keep_ops` operators, the last kept operator's output becoming
    the model's output. A one-unit sigmoid output compares only 256 possible values (and an untrained
    model's is often constant), so bit-exactness is also checked on a wide intermediate tensor."""
    import flatbuffers

    from host.interp import flatbuf

    model = flatbuf.parse(payload)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[:keep_ops]
    graph.outputs = [int(graph.operators[-1].outputs[0])]
    builder = flatbuffers.Builder(len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def wide_cut(payload: bytes, min_values: int = 64) -> tuple[int, str, int]:
    """(ops to keep, op name, values): the last operator whose int8 output holds at least
    `min_values` values, the widest tensor nearest the output."""
    from host.interp import flatbuf

    model = flatbuf.parse(payload)
    graph = model.subgraphs[0]
    best = None
    for i, op in enumerate(graph.operators):
        t = graph.tensors[op.outputs[0]]
        n = int(np.prod(t.shape))
        if n >= min_values and t.type == 9:  # TensorType.INT8
            best = (i + 1, flatbuf.op_name(model, op.opcodeIndex)[0], n)
    if best is None:
        raise UserError("no int8 intermediate tensor wide enough to compare")
    return best
