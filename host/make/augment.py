"""Training-time augmentation on float batches (n, 32, 32, 3) in 0..1.

Modes (TrainConfig.augment):
- none: the pixels as the board sees them;
- flip: random horizontal flips;
- jitter: flips, shifts of up to 3 pixels (people not centred), brightness and contrast (lighting);
- interp: flips, plus the paper's 5-interpolation copies of every training image (see host.train);
- robust: jitter, plus the door camera's degradations at random strengths: blur, motion blur,
  sensor noise, low light and distance (zoom-out); see host.make.degrade.robust_batch.
"""

from __future__ import annotations

import numpy as np

MODES = ("none", "flip", "jitter", "interp", "robust")


def augment_batch(x: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    if mode == "none":
        return x
    x = flip(x, rng)
    if mode in ("jitter", "robust"):
        x = shift(x, rng, 3)
        x = light(x, rng, contrast=0.2, brightness=0.1)
    if mode == "robust":
        from host.make import degrade  # imports data and preprocess; only needed for this mode

        x = degrade.robust_batch(x, rng)
    return x


def flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = x.copy()
    mask = rng.random(len(x)) < 0.5
    x[mask] = x[mask, :, ::-1]
    return x


def shift(x: np.ndarray, rng: np.random.Generator, pixels: int) -> np.ndarray:
    """One random shift per batch, edges repeated (cheap, and enough variety over an epoch)."""
    padded = np.pad(x, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode="edge")
    dx, dy = rng.integers(0, 2 * pixels + 1, size=2)
    h, w = x.shape[1:3]
    return padded[:, dy:dy + h, dx:dx + w]


def light(x: np.ndarray, rng: np.random.Generator, contrast: float, brightness: float) -> np.ndarray:
    n = len(x)
    c = rng.uniform(1 - contrast, 1 + contrast, (n, 1, 1, 1)).astype(np.float32)
    b = rng.uniform(-brightness, brightness, (n, 1, 1, 1)).astype(np.float32)
    return np.clip((x - 0.5) * c + 0.5 + b, 0.0, 1.0)
