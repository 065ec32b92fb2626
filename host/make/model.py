"""The paper's tiny CNN (Mohan, Paul and Chirania, arXiv 2011.14858), in one screen.

Three 3x3 conv blocks and one hidden dense layer, dropout after every layer, one sigmoid output
(P(with_mask)): 126,181 trainable parameters, about 2.9 M multiply-accumulates per frame. With
`classes=3` (without_mask, with_mask, none) the output is a 3-way softmax instead.

Every design in ARCHITECTURES takes (dropout, seed, classes); `zoo.output_layer` gives the head.
"""

from __future__ import annotations

import keras
from keras import layers

from host.make.zoo import output_layer

INPUT_SHAPE = (32, 32, 3)


def tiny_cnn(dropout: float = 0.2, dense_units: int = 100, seed: int = 1337, classes: int = 2) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(dense_units, activation="relu"),
            layers.Dropout(dropout),
            output_layer(classes),
        ],
        name="tiny_cnn",
    )
    return model


ARCHITECTURES = {"tiny_cnn": tiny_cnn}


def build(arch: str = "tiny_cnn", **kwargs) -> keras.Model:
    if arch not in ARCHITECTURES:
        from host.errors import UserError

        raise UserError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


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
