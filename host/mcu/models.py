"""The int8 models the emulator is measured on: the reference bundle, every design `host.compare`
offers (host.make.model.ARCHITECTURES, untrained: bit-exactness and instruction counts do not
need trained weights, but calibration uses real test images), and the published calibration
networks (host.mcu.latency.CALIBRATION), rebuilt with their shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host import preprocess
from host.errors import UserError

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "models" / "tinymask" / "tinymask.tflite"


def test_pixels(data_dir: Path, limit: int = 300, size: int = preprocess.INPUT_SIZE) -> np.ndarray:
    """Board pixels (n, size, size, 3) of up to `limit` test images, alternating the two classes."""
    from host.make import data

    test = Path(data_dir) / "test"
    per_class = [sorted((test / label).glob("*")) for label in ("with_mask", "without_mask")]
    if not any(per_class):
        raise UserError(f"{test}: no test images (expected test/with_mask and test/without_mask)")
    paths = [p for pair in zip(*per_class) for p in pair]
    longer = max(per_class, key=len)
    paths += longer[len(min(per_class, key=len)):]
    return np.stack([preprocess.board_pixels(data.load_image(p), size) for p in paths[:limit]])


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


# MCUNet's mcunet-vww1 (net_name "mcunet-5fps_vww", github.com/mit-han-lab/mcunet mcunet/model_zoo.py),
# read operator by operator from the model zoo's int8 .tflite (the copy in mit-han-lab/tinyengine
# assets/vww.tflite, 613,840 B): after the stem (3x3/2 conv, 16) and a 3x3 depthwise + 1x1 to 8, 14
# inverted-residual blocks of (expanded channels, depthwise kernel, stride, output channels).
MCUNET_VWW1_BLOCKS = (
    (48, 3, 2, 16), (48, 3, 1, 16), (48, 3, 1, 16),
    (48, 7, 2, 24), (144, 3, 1, 24), (120, 5, 1, 24),
    (144, 7, 2, 40), (240, 7, 1, 40), (240, 3, 1, 48), (192, 3, 1, 48),
    (240, 5, 2, 96), (480, 3, 1, 96), (384, 3, 1, 96), (288, 7, 1, 160),
)


def mcunet_vww1(seed: int = 1337) -> bytes:
    """mcunet-vww1 (MCUNet, Lin et al. 2020; 80x80x3, 2 classes, 11.6 M MACs), rebuilt op for op as
    its published .tflite has it. PyTorch's symmetric padding became an explicit PAD before each
    stride-2 layer whose TF "same" padding would be asymmetric, then a VALID convolution (the
    stride-2 5x5 depthwise on 5x5 is symmetric and stays SAME); the head is TRANSPOSE, two MEANs and
    a dense layer; the input is float32 (a QUANTIZE op) and so is the output (DEQUANTIZE)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def relu6(x):
        return layers.ReLU(6.0)(x)

    def depthwise(x, kernel, stride):
        if stride == 2 and x.shape[1] % 2 == 0:  # PyTorch pads (k-1)/2 on every side
            x = layers.ZeroPadding2D(kernel // 2)(x)
            return relu6(layers.DepthwiseConv2D(kernel, strides=2, padding="valid")(x))
        return relu6(layers.DepthwiseConv2D(kernel, strides=stride, padding="same")(x))

    inputs = keras.Input(shape=(80, 80, 3))
    x = relu6(layers.Conv2D(16, 3, strides=2, padding="valid")(layers.ZeroPadding2D(1)(inputs)))
    x = layers.Conv2D(8, 1)(depthwise(x, 3, 1))
    for expanded, kernel, stride, out in MCUNET_VWW1_BLOCKS:
        y = layers.Conv2D(out, 1)(depthwise(relu6(layers.Conv2D(expanded, 1)(x)), kernel, stride))
        x = layers.Add()([x, y]) if stride == 1 and x.shape[-1] == out else y
    x = layers.Permute((3, 1, 2))(x)  # NHWC -> NCHW, then the mean over W and over H, as converted
    x = layers.Lambda(lambda t: keras.ops.mean(t, axis=-1))(x)
    x = layers.Lambda(lambda t: keras.ops.mean(t, axis=-1))(x)
    outputs = layers.Dense(2)(x)
    return _quantize(keras.Model(inputs, outputs), (80, 80, 3), seed, float_io=True)


def _quantize(model, shape, seed, float_io: bool = False) -> bytes:
    from host.make import quantize

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (16,) + shape, dtype=np.uint8)
    return quantize.quantize(model, pixels, float_io=float_io)


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
