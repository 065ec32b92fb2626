"""More model designs for the comparison (`python -m host.compare`), each in one screen.

- `squeezenet`: SqueezeNet 1.1 (Iandola et al. 2016) adapted to 32x32 input: a stride-2 3x3 stem,
  eight fire modules (squeeze 1x1 -> expand 1x1 + expand 3x3, concatenated) in three stages at
  16x16, 8x8 and 4x4, and the SqueezeNet head (dropout, 1x1 conv to one channel, global average,
  sigmoid). The paper's first comparison model.
- `squeezenet_mod`: the same with two fire modules removed (fire8 and fire9, the widest ones), the
  paper's "modified SqueezeNet".
- `ds_cnn`: our frontier design: depthwise-separable convolutions (MobileNet style) with batch
  normalisation, and a small head that keeps where things are (flatten of a 4x4 map into 16 units)
  instead of the tiny CNN's 1024x100 dense layer, which holds 81% of its parameters.
- `ds_cnn_wide`: `ds_cnn` with twice the filters, for the accuracy end of the front.
- `door_cnn`: issue 13's small candidate: `ds_cnn` with a 16-filter stem and a 96-filter last block
  (0.56 M MACs, 2.9 ms estimated on the H7, 53 KB int8 with three classes), sized to stay under
  64 KB (the H7's /flash beside the firmware) and 5 ms; `door_cnn_s1` (its stem at full 32x32
  resolution, 4.6 ms), `door_cnn_w` (wider last blocks, 62 KB) and `door_cnn_g` (door_cnn_w with a global
  max pool before a 64-unit head, 47 KB), `door_cnn_e` (the budget moved to the 16x16 stage, 56 KB) and
  `door_cnn_f` (a separable stem at full 32x32, 8 channels, 60 KB, 4.8 ms counted; 3.8 points behind
  door_cnn_w door-framed over five seeds) are its variants. Measured in
  docs/model.md: door_cnn_w trained 60 epochs from 2e-3 with faces framed from their camera window
  (`--recipe door-small`, the default) admits 0.8 points fewer masked faces close up and 2.1 fewer
  door-framed than the paper's CNN trained the same way at 1e-3 (nine seeds, inside both spreads); against
  the paper's CNN at 2e-3 too, 5.6 fewer door-framed (six seeds).
- `door_cnn_r20`: issue 13's 48x48 candidate, the one design whose input is not 32x32 (`INPUT_SIZES`):
  a 16-filter stride-2 stem at 24x24 pooled to 12x12, door_cnn_w's blocks of 32 / 96 / 128 filters at
  12x12, 6x6 and 3x3, and a 20-unit head. The camera window drawn into 48x48 keeps the detail of a
  face a step or two from the door that 32x32 loses. Over six seeds it admits more masked faces than
  door_cnn_w, level with the paper's CNN close up and 3.0 points behind it door-framed (docs/model.md).

Every design's input is INPUT_SHAPE (32x32x3) unless `INPUT_SIZES` names another side for it;
`host.make.model.input_size(arch)` says which without building the model.

Every design takes (dropout, seed) like `host.make.model.tiny_cnn`, so `host.train` can build it, and uses
only operators the OpenMV H7 runs (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, CONCATENATION, MEAN,
FULLY_CONNECTED, RESHAPE, LOGISTIC after conversion; batch normalisation folds into the convolutions).
"""

from __future__ import annotations

import keras
from keras import layers

INPUT_SHAPE = (32, 32, 3)
R20_SIZE = 48
INPUT_SIZES = {"door_cnn_r20": R20_SIZE}  # designs whose input side is not INPUT_SHAPE's

# (squeeze, expand) filters of SqueezeNet 1.1's fire2..fire9, and where it pools.
FIRES = [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256)]
POOL_AFTER = {1, 3}  # after fire3 and fire5 (0-based indices into FIRES)


def output_layer(classes: int, name: str | None = None) -> layers.Layer:
    """One sigmoid unit, P(with_mask), for two classes; a softmax over the labels for more."""
    if classes == 2:
        return layers.Dense(1, activation="sigmoid", name=name)
    return layers.Dense(classes, activation="softmax", name=name)


def fire(x, squeeze: int, expand: int, name: str):
    s = layers.Conv2D(squeeze, 1, activation="relu", name=f"{name}_squeeze")(x)
    e1 = layers.Conv2D(expand, 1, activation="relu", name=f"{name}_expand1x1")(s)
    e3 = layers.Conv2D(expand, 3, padding="same", activation="relu", name=f"{name}_expand3x3")(s)
    return layers.Concatenate(name=f"{name}_concat")([e1, e3])


def _squeezenet(fires: list[tuple[int, int]], name: str, dropout: float, seed: int, classes: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=INPUT_SHAPE)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    for i, (squeeze, expand) in enumerate(fires):
        x = fire(x, squeeze, expand, f"fire{i + 2}")
        if i in POOL_AFTER:
            x = layers.MaxPooling2D(name=f"pool{i + 2}")(x)
    # SqueezeNet's own head uses dropout 0.5 before conv10; keep the caller's rate for comparability.
    x = layers.Dropout(dropout)(x)
    x = layers.Conv2D(1 if classes == 2 else classes, 1, name="conv10")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("sigmoid" if classes == 2 else "softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def squeezenet(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    return _squeezenet(FIRES, "squeezenet", dropout, seed, classes)


def squeezenet_mod(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """SqueezeNet with fire8 and fire9 removed (the paper removes two fire modules for 32x32)."""
    return _squeezenet(FIRES[:-2], "squeezenet_mod", dropout, seed, classes)


def separable(x, filters: int, name: str):
    """Depthwise 3x3 then pointwise 1x1, each followed by batch normalisation and ReLU."""
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


def _ds_cnn(stem: int, widths: tuple[int, int, int], head_units: int, name: str, dropout: float,
            seed: int, classes: int, stem_stride: int = 2, global_max: bool = False,
            separable_stem: bool = False, size: int = INPUT_SHAPE[0], stem_pool: bool = False) -> keras.Model:
    """The separable designs; the map sizes in the comments are at a 32x32 input (`size`: the input's side;
    `stem_pool`: a 2x2 max pool after a stride-2 stem too)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(size, size, INPUT_SHAPE[2]))
    if separable_stem:  # each colour's 3x3, then mixed
        x = separable(inputs, stem, "stem")
    else:
        x = layers.Conv2D(stem, 3, strides=stem_stride, padding="same", use_bias=False, name="stem")(inputs)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    if stem_stride == 1 or stem_pool:  # the stem sees every pixel at 32x32, then pools to 16x16
        x = layers.MaxPooling2D(name="pool0")(x)
    x = separable(x, widths[0], "block1")
    x = layers.MaxPooling2D(name="pool1")(x)  # 8x8
    x = separable(x, widths[1], "block2")
    x = layers.MaxPooling2D(name="pool2")(x)  # 4x4
    x = separable(x, widths[2], "block3")
    x = layers.Dropout(dropout)(x)
    if global_max:  # the strongest response anywhere in the 4x4 map: a face in any part of the window
        x = layers.MaxPooling2D(pool_size=4, name="pool_global")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(head_units, activation="relu", name="head")(x)
    x = layers.Dropout(dropout)(x)
    outputs = output_layer(classes, name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def ds_cnn(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    return _ds_cnn(8, (32, 64, 64), 16, "ds_cnn", dropout, seed, classes)


def ds_cnn_wide(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    return _ds_cnn(16, (32, 64, 128), 32, "ds_cnn_wide", dropout, seed, classes)


def door_cnn(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    return _ds_cnn(16, (32, 64, 96), 16, "door_cnn", dropout, seed, classes)


def door_cnn_s1(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """door_cnn whose stem convolves the full 32x32 input (stride 1, then a 2x2 pool): the detail a
    small or distant face has (about 0.89 M MACs, 4.6 ms estimated)."""
    return _ds_cnn(16, (32, 64, 96), 16, "door_cnn_s1", dropout, seed, classes, stem_stride=1)


def door_cnn_w(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """door_cnn with wider last blocks (96, 128) and a 12-unit head, the most that stays under 64 KB."""
    return _ds_cnn(16, (32, 96, 128), 12, "door_cnn_w", dropout, seed, classes)


def door_cnn_g(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """door_cnn_w's blocks with a global max pool before a 64-unit head: where in the window the face
    is stops mattering (door framing puts it anywhere near the centre), and the head gets wider for
    the bytes the 2,048-value flatten used."""
    return _ds_cnn(16, (32, 96, 128), 64, "door_cnn_g", dropout, seed, classes, global_max=True)


def door_cnn_e(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """door_cnn_w's budget moved to the 16x16 stage, where a face 40-70% of the window still has its
    parts: blocks of 48 / 64 / 96 filters and a 16-unit head (700k MACs, 4.88 ms counted, 52 KB)."""
    return _ds_cnn(16, (48, 64, 96), 16, "door_cnn_e", dropout, seed, classes)


def door_cnn_f(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """door_cnn_w with a full-resolution stem: each colour's 3x3 at 32x32, mixed into 8 channels and
    max-pooled (the paper CNN's first layer sees that detail, a stride-2 stem does not), blocks of
    32 / 80 / 128 filters to stay at door_cnn_w's 4.8 ms counted."""
    return _ds_cnn(8, (32, 80, 128), 12, "door_cnn_f", dropout, seed, classes, stem_stride=1, separable_stem=True)


def door_cnn_r20(dropout: float = 0.2, seed: int = 1337, classes: int = 2) -> keras.Model:
    """Issue 13's 48x48 candidate: a 16-filter 3x3 stride-2 stem (24x24) max-pooled to 12x12, blocks of
    32 (then pooled to 6x6), 96 (to 3x3) and 128 filters, and a 20-unit head."""
    return _ds_cnn(16, (32, 96, 128), 20, "door_cnn_r20", dropout, seed, classes, size=R20_SIZE, stem_pool=True)


ARCHITECTURES = {
    "squeezenet": squeezenet,
    "squeezenet_mod": squeezenet_mod,
    "ds_cnn": ds_cnn,
    "ds_cnn_wide": ds_cnn_wide,
    "door_cnn": door_cnn,
    "door_cnn_s1": door_cnn_s1,
    "door_cnn_w": door_cnn_w,
    "door_cnn_g": door_cnn_g,
    "door_cnn_e": door_cnn_e,
    "door_cnn_f": door_cnn_f,
    "door_cnn_r20": door_cnn_r20,
}
