"""Test-time degradations of what a door camera sees, and their training-time counterparts.

`DEGRADATIONS` act on the 200x200 camera window (uint8 RGB888, `preprocess.camera_window`), i.e.
on the scene as the sensor would capture it. The degraded window is then quantized to RGB565 again
(the camera only delivers RGB565) and downscaled to the model's input (32x32, or the design's size)
with `preprocess.board_downscale`, the board's own path. Every degradation is deterministic: the
random parts (noise) draw from a generator seeded by (seed, degradation, image index), so results
do not depend on order or batch.

- gaussian_blur: defocus, Gaussian of radius 4 window pixels (0.64 board pixels);
- motion_blur: someone walking past, horizontal box blur 21 window pixels long;
- noise: sensor noise, Gaussian with sigma 24 of 255 per pixel and channel;
- low_light: a dim entrance, brightness times 0.35 (the RGB565 round trip then drops levels);
- jpeg: JPEG quality 12, as a frame saved and reloaded, or streamed over a weak link;
- scale: the person stands further away: the scene shrinks to 60% inside the window, edges
  repeated around it.

`robust_batch` is the training-side counterpart used by `host.make.augment`'s "robust" mode. It works on
the float batches training uses, at the model's input size (decoding every window each epoch would
be far too slow), with random strengths of blur, motion blur, noise, brightness and zoom-out. JPEG is deliberately left out
of training so the table shows one degradation the robust model never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from host import preprocess
from host.make import data as data_mod

DEFAULT_SEED = 2024


@dataclass(frozen=True)
class Degradation:
    name: str
    description: str
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]  # uint8 window -> uint8 window


def gaussian_blur(window: np.ndarray, rng: np.random.Generator, radius: float = 4.0) -> np.ndarray:
    return np.asarray(Image.fromarray(window).filter(ImageFilter.GaussianBlur(radius)), dtype=np.uint8)


def motion_blur(window: np.ndarray, rng: np.random.Generator, length: int = 21) -> np.ndarray:
    return box_blur_x(window.astype(np.float32), length).round().clip(0, 255).astype(np.uint8)


def box_blur_x(image: np.ndarray, length: int) -> np.ndarray:
    """Mean over `length` pixels along x (axis -2), edges repeated: a horizontal motion streak."""
    if length <= 1:
        return image
    before, after = (length - 1) // 2, length // 2
    pad = [(0, 0)] * image.ndim
    pad[-2] = (before + 1, after)
    padded = np.pad(image, pad, mode="edge")
    summed = np.cumsum(padded, axis=-2, dtype=np.float64)
    width = image.shape[-2]
    window_sums = np.take(summed, np.arange(length, length + width), axis=-2) - np.take(summed, np.arange(width), axis=-2)
    return (window_sums / length).astype(image.dtype)


def gaussian_noise(window: np.ndarray, rng: np.random.Generator, sigma: float = 24.0) -> np.ndarray:
    noisy = window.astype(np.float32) + rng.normal(0.0, sigma, window.shape).astype(np.float32)
    return noisy.round().clip(0, 255).astype(np.uint8)


def low_light(window: np.ndarray, rng: np.random.Generator, factor: float = 0.35) -> np.ndarray:
    return (window.astype(np.float32) * factor).round().clip(0, 255).astype(np.uint8)


def jpeg(window: np.ndarray, rng: np.random.Generator, quality: int = 12) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    Image.fromarray(window).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def zoom_out(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrink the content to `factor` of its size, centred, the border filled by repeating edges."""
    h, w = image.shape[:2]
    small_h, small_w = max(1, round(h * factor)), max(1, round(w * factor))
    small = np.asarray(Image.fromarray(image).resize((small_w, small_h), Image.Resampling.BILINEAR))
    top, left = (h - small_h) // 2, (w - small_w) // 2
    return np.pad(small, ((top, h - small_h - top), (left, w - small_w - left), (0, 0)), mode="edge")


def scale(window: np.ndarray, rng: np.random.Generator, factor: float = 0.6) -> np.ndarray:
    return zoom_out(window, factor)


DEGRADATIONS: dict[str, Degradation] = {
    d.name: d
    for d in (
        Degradation("gaussian_blur", "Gaussian blur, radius 4 window px", gaussian_blur),
        Degradation("motion_blur", "horizontal motion blur, 21 window px", motion_blur),
        Degradation("noise", "Gaussian noise, sigma 24/255", gaussian_noise),
        Degradation("low_light", "brightness x0.35", low_light),
        Degradation("jpeg", "JPEG quality 12", jpeg),
        Degradation("scale", "person further away: content at 60%, edges repeated", scale),
    )
}


def degrade_window(window: np.ndarray, name: str, seed: int = DEFAULT_SEED, index: int = 0) -> np.ndarray:
    """One degraded camera window (uint8, (200, 200, 3)); deterministic in (seed, name, index)."""
    kind = list(DEGRADATIONS).index(name)
    rng = np.random.default_rng([seed, kind, index])
    return DEGRADATIONS[name].apply(window, rng)


def window_to_pixels(window: np.ndarray, size: int = preprocess.INPUT_SIZE) -> np.ndarray:
    """A window as the camera delivers it (RGB565) and as the board feeds it (size x size)."""
    rgb565 = preprocess.rgb565_to_rgb888(preprocess.rgb888_to_rgb565(window))
    return preprocess.board_downscale(rgb565, size)


def camera_windows(paths: list, progress: bool = False) -> np.ndarray:
    """The 200x200 camera windows of the given images (uint8, (n, 200, 200, 3)), decoded once."""
    windows = [
        preprocess.camera_window(data_mod.load_image(path))
        for path in tqdm(paths, desc="camera windows", unit="img", disable=not progress, leave=False)
    ]
    return np.stack(windows) if windows else np.zeros((0, preprocess.WINDOW, preprocess.WINDOW, 3), np.uint8)


def degraded_pixels(windows: np.ndarray, name: str, seed: int = DEFAULT_SEED,
                    size: int = preprocess.INPUT_SIZE) -> np.ndarray:
    """Board pixels (n, size, size, 3) of every window after the named degradation."""
    if name not in DEGRADATIONS:
        from host.errors import UserError

        raise UserError(f"unknown degradation {name!r}; choose from {', '.join(DEGRADATIONS)}")
    return np.stack([window_to_pixels(degrade_window(w, name, seed, i), size) for i, w in enumerate(windows)])


def degraded_split(split: data_mod.Split, windows: np.ndarray, name: str, seed: int = DEFAULT_SEED) -> data_mod.Split:
    """`split`'s pictures (their camera `windows`) after the named degradation, at the split's size."""
    return data_mod.Split(degraded_pixels(windows, name, seed, split.size), split.labels, split.groups, split.paths,
                          remake=lambda size: degraded_pixels(windows, name, seed, size))


# ---- training-time counterpart (float batches in 0..1 at the model's input size) -------------------


def robust_batch(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Each image independently gets each kind of degradation with probability p/2..p, at a random
    strength spanning the test-time levels (scaled to 32x32 board pixels; the same pixel strengths at any size)."""
    x = x.copy()
    n = len(x)
    for i in np.nonzero(rng.random(n) < p / 2)[0]:
        x[i] = _from_uint8(zoom_out(_to_uint8(x[i]), rng.uniform(0.5, 0.95)))
    blur_kind = rng.random(n)
    for i in np.nonzero(blur_kind < p / 3)[0]:
        radius = rng.uniform(0.3, 1.0)
        x[i] = _from_uint8(np.asarray(Image.fromarray(_to_uint8(x[i])).filter(ImageFilter.GaussianBlur(radius))))
    for i in np.nonzero((blur_kind >= p / 3) & (blur_kind < 2 * p / 3))[0]:
        x[i] = box_blur_x(x[i], int(rng.integers(2, 5)))
    dim = rng.random(n) < p
    x[dim] *= rng.uniform(0.25, 1.15, (int(dim.sum()), 1, 1, 1)).astype(np.float32)
    noisy = rng.random(n) < p / 2
    sigma = rng.uniform(0.02, 0.12, (int(noisy.sum()), 1, 1, 1)).astype(np.float32)
    x[noisy] += rng.normal(0.0, 1.0, x[noisy].shape).astype(np.float32) * sigma
    return np.clip(x, 0.0, 1.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (image * 255.0).round().clip(0, 255).astype(np.uint8)


def _from_uint8(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0
