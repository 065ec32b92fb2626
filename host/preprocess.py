"""Board-faithful preprocessing (contract 1): the one path from a picture to the model's input.

Training, evaluation and the board simulator all call `camera_window` and `board_pixels`, so the
host sees exactly the pixels the camera would feed the model:

1. `camera_window`: the camera looks at the scene through a centred 200x200 window of QVGA. A
   picture is centre-cropped to a square and resized to 200x200 (what the window would see), then
   quantized to RGB565 and expanded back to 8 bits by bit replication, as imlib does.
2. `board_downscale_rgb565`: `ml.Model.predict([img])` (and legacy `net.classify`) draws the window
   into an RGB565 image the size of the input tensor with `image.BILINEAR|CENTER|SCALE_ASPECT_*`
   (openmv `scripts/libraries/ml/ml-core/ml/preprocessing.py`), then expands RGB565 to RGB888 with
   bit replication (`to_ndarray`). We reproduce imlib's integer bilinear path (`lib/imlib/draw.c`,
   RGB565 case) operation for operation: it blends the 2x2 neighbours of each sample point, so a
   200->32 (or 200->48) downscale samples the window, it does not average it. The input's side is
   the model's (host.make.model.input_size for a design, the .tflite's input tensor for a bundle).
3. The board feeds an int8 model `q = pixel - 128`; the float model sees `pixel / 255`, which is
   the same number once the input is quantized with scale 1/255 and zero point -128.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WINDOW = 200
INPUT_SIZE = 32  # the model input side every design had before issue 13's 48x48 candidate; still the default

# imlib's COLOR_RGB565_TO_R8/G8/B8 (openmv lib/imlib/imlib.h, v4.5.6 to v5.0.0, simd.h alike):
# bit replication, (r5 << 3) | (r5 >> 2) and (g6 << 2) | (g6 >> 4); not rounding.
_R5_TO_R8 = np.array([(i << 3) | (i >> 2) for i in range(32)], dtype=np.uint8)
_G6_TO_G8 = np.array([(i << 2) | (i >> 4) for i in range(64)], dtype=np.uint8)

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}


def square_crop(image: Image.Image) -> Image.Image:
    """Centre crop to the largest square, as the square camera window frames a face."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def rgb888_to_rgb565(rgb: np.ndarray) -> np.ndarray:
    """Pack uint8 RGB (..., 3) into uint16 RGB565, rounding each channel to its nearest level."""
    rgb = rgb.astype(np.uint16)
    r5 = (rgb[..., 0] * 31 + 127) // 255
    g6 = (rgb[..., 1] * 63 + 127) // 255
    b5 = (rgb[..., 2] * 31 + 127) // 255
    return ((r5 << 11) | (g6 << 5) | b5).astype(np.uint16)


def rgb565_to_rgb888(packed: np.ndarray) -> np.ndarray:
    """Expand uint16 RGB565 to uint8 RGB by bit replication, as imlib's COLOR_RGB565_TO_R8/G8/B8."""
    packed = packed.astype(np.uint16)
    r = _R5_TO_R8[(packed >> 11) & 0x1F]
    g = _G6_TO_G8[(packed >> 5) & 0x3F]
    b = _R5_TO_R8[packed & 0x1F]
    return np.stack([r, g, b], axis=-1)


def camera_window_rgb565(image: Image.Image, window: int = WINDOW) -> np.ndarray:
    """What the camera's window holds for this scene: uint16 RGB565, shape (window, window)."""
    square = square_crop(image.convert("RGB"))
    resized = square.resize((window, window), Image.Resampling.BILINEAR)
    return rgb888_to_rgb565(np.asarray(resized, dtype=np.uint8))


def camera_window(image: Image.Image, window: int = WINDOW) -> np.ndarray:
    """The camera window as the board's RGB888 expansion: uint8, shape (window, window, 3)."""
    return rgb565_to_rgb888(camera_window_rgb565(image, window))


def board_downscale_rgb565(packed: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """imlib's bilinear scaling of an RGB565 image (draw_image, hint BILINEAR), integer for integer.

    Per axis: a 16.16 accumulator starts at -0.5 pixel (imlib undoes bilinear's half-pixel shift)
    and steps by floor(65536 / scale); the source index is accumulator >> 16, the weight of the
    next pixel is bits 11..15 (5 bits, /32); indices outside the image clamp to the edge. Rows are
    blended first, then columns, each channel in its own 5/6-bit units, rounded as
    (a * (32 - w) + b * w + 16) >> 5.
    """
    h, w = packed.shape
    if h == size and w == size:
        return packed.copy()  # imlib drops the bilinear hint when nothing is scaled
    r = ((packed >> 11) & 0x1F).astype(np.int32)
    g = ((packed >> 5) & 0x3F).astype(np.int32)
    b = (packed & 0x1F).astype(np.int32)
    y0, y1, wy = _bilinear_taps(h, size)
    x0, x1, wx = _bilinear_taps(w, size)
    out = []
    for channel in (r, g, b):
        rows = (channel[y0] * (32 - wy)[:, None] + channel[y1] * wy[:, None] + 16) >> 5
        out.append((rows[:, x0] * (32 - wx)[None, :] + rows[:, x1] * wx[None, :] + 16) >> 5)
    r, g, b = out
    return ((r << 11) | (g << 5) | b).astype(np.uint16)


def _bilinear_taps(src_len: int, dst_len: int):
    scale = np.float32(dst_len) / np.float32(src_len)
    step = int(np.floor(np.float32(65536.0) / scale))
    accum = np.arange(dst_len, dtype=np.int64) * step - 0x8000
    index = accum >> 16
    weight = ((accum >> 11) & 0x1F).astype(np.int32)
    first = np.clip(index, 0, src_len - 1)
    second = np.where((index < 0) | (index >= src_len - 1), first, index + 1)
    return first, second, weight


def window_pixels(packed: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """An RGB565 window as the model sees it: the board's scaling, then its RGB888 expansion."""
    return rgb565_to_rgb888(board_downscale_rgb565(packed, size))


def board_downscale(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The board's downscale for a uint8 RGB image: through RGB565, as the camera's frames are."""
    return window_pixels(rgb888_to_rgb565(rgb), size)


def board_pixels(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Contract 1 end to end: a picture to the uint8 (size, size, 3) pixels the board feeds a model
    whose input is size x size (32 unless the design says otherwise, host.make.model.input_size)."""
    return window_pixels(camera_window_rgb565(image), size)


def to_float_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels to the float model's input, x / 255."""
    return pixels.astype(np.float32) / 255.0


def to_int8_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels to the int8 tensor the board feeds: pixel - 128 (pixel ^ 0x80)."""
    return (pixels.astype(np.int16) - 128).astype(np.int8)


def interpolation_variants(image: Image.Image, size: int = INPUT_SIZE) -> list[np.ndarray]:
    """The paper's augmentation: the square crop resized straight to the input (32x32 by default)
    with 5 interpolations."""
    square = square_crop(image.convert("RGB"))
    return [
        np.asarray(square.resize((size, size), method), dtype=np.uint8)
        for method in INTERPOLATIONS.values()
    ]
