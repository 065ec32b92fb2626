"""The paper's tiny CNN (Mohan, Paul and Chirania, arXiv 2011.14858), in one screen.

Three 3x3 conv blocks and one hidden dense layer, dropout after every layer, one sigmoid output
(P(with_mask)): 126,181 trainable parameters, about 2.9 M multiply-accumulates per frame. With
`classes=3` (without_mask, with_mask, none) the output is a 3-way softmax instead.
`tiny_cnn_n6` and `tiny_cnn_n8` are the same design with fewer filters, sized for issue 13's
64 KB / 5 ms budget (benchmarks/bench_mcu.py counts them).

Every design in ARCHITECTURES takes (dropout, seed, classes); `zoo.output_layer` gives the head.
Its input is 32x32x3 unless `zoo.INPUT_SIZES` says otherwise (`input_size`).
"""

from __future__ import annotations

import keras
from keras import layers

from host.make.zoo import INPUT_SIZES, output_layer

INPUT_SHAPE = (32, 32, 3)


def tiny_cnn(dropout: float = 0.2, dense_units: int = 100, seed: int = 1337, classes: int = 2,
             filters: tuple[int, int, int] = (16, 32, 64), name: str = "tiny_cnn") -> keras.Model:
    keras.utils.set_random_seed(seed)
    blocks = []
    for f in filters:
        blocks += [layers.Conv2D(f, 3, padding="same", activation="relu"), layers.MaxPooling2D(), layers.Dropout(dropout)]
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *blocks,
            layers.Flatten(),
            layers.Dense(dense_units, activation="relu"),
            layers.Dropout(dropout),
            output_layer(classes),
        ],
        name=name,
    )


def tiny_cnn_n6(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """The paper's CNN, narrower (6 / 16 / 32 filters, the same 100-unit head): it keeps the full
    32x32 first convolution a distant face's detail needs, in 63 KB and 4.9 ms counted (3 classes)."""
    return tiny_cnn(dropout, 100, seed, classes, (6, 16, 32), "tiny_cnn_n6")


def tiny_cnn_n8(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """The paper's CNN with 8 / 12 / 32 filters and its 100-unit head: 62 KB, 5.0 ms counted (3 classes)."""
    return tiny_cnn(dropout, 100, seed, classes, (8, 12, 32), "tiny_cnn_n8")


ARCHITECTURES = {"tiny_cnn": tiny_cnn, "tiny_cnn_n6": tiny_cnn_n6, "tiny_cnn_n8": tiny_cnn_n8}


def build(arch: str = "tiny_cnn", **kwargs) -> keras.Model:
    if arch not in ARCHITECTURES:
        from host.errors import UserError

        raise UserError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


def input_size(arch: str) -> int:
    """The side of `arch`'s square input (32, or the design's own: zoo.INPUT_SIZES), known before any
    data is decoded or any model built."""
    if arch not in ARCHITECTURES:
        from host.errors import UserError

        raise UserError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return INPUT_SIZES.get(arch, INPUT_SHAPE[0])


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference: conv, depthwise conv and dense layers."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * c * kh * kw
        elif isinstance(layer, layers.SeparableConv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            macs += h * w * c_in * kh * kw + h * w * c_in * c_out
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            macs += h * w * c_out * kh * kw * c_in // layer.groups
        elif isinstance(layer, layers.Dense):
            macs += int(layer.input.shape[-1]) * layer.units
        elif isinstance(layer, keras.Model):
            macs += count_macs(layer)
    return int(macs)


def _register_zoo() -> None:
    """Add the comparison designs (host.make.zoo) to ARCHITECTURES; zoo does not import this module."""
    from host.make import zoo

    ARCHITECTURES.update(zoo.ARCHITECTURES)


_register_zoo()
