"""Training-time augmentation on float batches (n, size, size, 3) in 0..1, at the model's input size.

Modes (TrainConfig.augment):
- none: the pixels as the board sees them;
- flip: random horizontal flips;
- jitter: flips, shifts of up to 3 pixels (people not centred), brightness and contrast (lighting);
- interp: flips, plus the paper's 5-interpolation copies of every training image (see host.train);
- robust: jitter, plus the door camera's degradations at random strengths: blur, motion blur,
  sensor noise, low light and distance (zoom-out); see host.make.degrade.robust_batch;
- door (issue 13): jitter, plus every part in `DOOR_PARTS`, each drawn per image with its own
  probability and strength, for every class alike (so "little detail" stops meaning "masked"),
  and the board's RGB565 quantization last. `doorframe` comes first: the face shrunk to part of
  the window in front of a scene, as a door camera frames a person a step or two away (the
  training sets frame faces close up; docs/presence.md measured 19-29% of unmasked faces admitted
  at door framing without it). Its scenes are the training split's `none` images when it has them
  (scenes-negative train), else smooth random colour fields.
A mode may also be a `+`-joined list of parts, e.g. `jitter+smallface+blur`, to measure one
ingredient at a time (benchmarks/bench_ingredients.py; docs/model.md).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from host import framing, preprocess
from host.errors import UserError

BASE_MODES = ("none", "flip", "jitter", "interp", "robust", "door")
# name -> (probability per image, what it simulates)
DOOR_PARTS = {
    "doorframe": (0.5, "the face shrunk to 40-100% of the window's side, pasted near the centre of a scene"),
    "smallface": (0.3, "a face 16-48 px across in the source, scaled up to the window (area down, bilinear up)"),
    "blur": (0.25, "defocus (Gaussian, sigma 0.3-1.2 board px) or motion (2-4 px horizontal streak)"),
    "wb": (0.3, "white-balance cast: per-channel gains 0.8-1.2"),
    "light": (0.4, "gamma 0.6-2.2 and gain 0.3-1.1: low light and exposure"),
    "noise": (0.25, "sensor noise, Gaussian sigma 0.01-0.08"),
    "jpeg": (0.2, "JPEG quality 15-70 round trip"),
    "rgb565": (1.0, "the camera's RGB565 levels (applied last, to every image)"),
}
SHRINKS = ("box", "board", "window")  # how door framing makes a face smaller (door_framing)
WINDOW_COPY = 64  # px of the camera-window copy "window" shrinks from: 8 KB per training image; inputs up to 64
MODES = BASE_MODES  # the named modes; `valid_mode` also accepts part lists


def parts_of(mode: str) -> tuple[str, ...]:
    """The ingredients of a mode: "door" is jitter and every DOOR_PARTS entry."""
    if mode == "door":
        return ("jitter", *DOOR_PARTS)
    return tuple(mode.split("+")) if "+" in mode else (mode,)


def valid_mode(mode: str) -> bool:
    if mode in BASE_MODES:
        return True
    parts = mode.split("+")
    return all(p in DOOR_PARTS or p in ("flip", "jitter") for p in parts) and len(set(parts)) == len(parts)


def augment_batch(x: np.ndarray, mode: str, rng: np.random.Generator,
                  scenes: np.ndarray | None = None, doorframe: float | None = None,
                  shrink: str = "box", windows: np.ndarray | None = None,
                  scene_weights: np.ndarray | None = None) -> np.ndarray:
    """`scenes`: uint8 (n, size, size, 3) backgrounds for `doorframe` (None: random colour fields), drawn
    with `scene_weights` when given (host.make.mining), else uniformly;
    `doorframe`: its probability per image instead of DOOR_PARTS' (host.train --doorframe);
    `shrink`: how door framing shrinks the face, one of SHRINKS (host.train --doorframe-shrink);
    `windows`: for shrink "window", each image's camera window at WINDOW_COPY px (window_copies).
    From the window, door framing comes first, so the flips and lighting apply to the whole frame."""
    if mode == "none":
        return x
    parts = parts_of(mode)
    share = DOOR_PARTS["doorframe"][0] if doorframe is None else doorframe
    from_window = shrink == "window" and "doorframe" in parts
    if from_window:
        if windows is None or len(windows) != len(x):
            raise ValueError("door framing from the window needs one window copy per image")
        x = door_framing(x, rng, share, scenes, shrink, windows, scene_weights)
    x = flip(x, rng)
    if mode in ("jitter", "robust") or "jitter" in parts:
        x = shift(x, rng, 3)
        x = light(x, rng, contrast=0.2, brightness=0.1)
    if mode == "robust":
        from host.make import degrade  # imports data and preprocess; only needed for this mode

        x = degrade.robust_batch(x, rng)
    for name in DOOR_PARTS:  # a fixed order: the camera's chain, RGB565 last
        if name == "doorframe" and name in parts:
            if not from_window:
                x = door_framing(x, rng, share, scenes, shrink, scene_weights=scene_weights)
        elif name in parts:
            x = DOOR_FUNCTIONS[name](x, rng, DOOR_PARTS[name][0])
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


# ---- issue 13's door-camera degradations, per image, every class alike ------------------------------


def _chosen(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return np.nonzero(rng.random(n) < p)[0]


def door_framing(x: np.ndarray, rng: np.random.Generator, p: float, scenes: np.ndarray | None,
                 shrink: str = "box", windows: np.ndarray | None = None,
                 scene_weights: np.ndarray | None = None) -> np.ndarray:
    """host.framing.door_frame at the model's resolution: the picture (32x32, or the model's input
    size) shrunk to 40-100% of the side and pasted into a scene within a quarter of the slack of the
    centre. A `none` picture
    pasted into a scene still holds no face, so every class is treated alike. `shrink` "box"
    averages (a smooth small face); "board" samples with the camera's 2-tap bilinear scaling
    (host.preprocess.board_downscale), as the board samples a face that fills part of the window;
    "window" does that from `windows[i]`, the image's camera window at WINDOW_COPY px, which holds
    the detail a 32 px picture has lost (the door-framed test scales the face from the photo)."""
    x = x.copy()
    size = x.shape[1]
    if shrink == "window":
        check_window_copy(size)
    for i in _chosen(rng, len(x), p):
        side = int(round(size * rng.uniform(0.4, 1.0)))
        if side >= size:
            continue
        canvas = _from_uint8(scenes[pick_scene(rng, len(scenes), scene_weights)]) if scenes is not None and len(scenes) \
            else colour_field(rng, size)
        if shrink == "window":
            patch = preprocess.window_pixels(windows[i], side)
        else:
            patch = shrunk(_to_uint8(x[i]), side, shrink)
        slack = size - side
        ox, oy = framing.centred_offset(slack, rng), framing.centred_offset(slack, rng)
        canvas[oy:oy + side, ox:ox + side] = _from_uint8(patch)
        x[i] = canvas
    return x


def pick_scene(rng: np.random.Generator, count: int, weights: np.ndarray | None) -> int:
    """A background index: uniform (one integer draw, as every bundle before mining), or by `weights`."""
    return int(rng.integers(count)) if weights is None else int(rng.choice(count, p=weights))


def none_zoom(pixels: np.ndarray, no_face: np.ndarray, windows: np.ndarray, rng: np.random.Generator,
              p: float) -> np.ndarray:
    """uint8 pixels with each no-face picture, with probability `p`, replaced by a closer view of its
    camera window: a random square of 50-100% of the window's side, scaled to the model's input by
    the board's bilinear path, as the camera sees a scene it stands nearer to. Faces are left alone
    (a zoom could cut the face out and leave its label wrong)."""
    if len(windows) != len(pixels):
        raise ValueError("--none-zoom needs one window copy per image")
    out = pixels.copy()
    size = pixels.shape[1]
    check_window_copy(size)
    for i in np.nonzero(no_face & (rng.random(len(pixels)) < p))[0]:
        side = int(rng.integers(WINDOW_COPY // 2, WINDOW_COPY + 1))
        ox, oy = rng.integers(0, WINDOW_COPY - side + 1, size=2)
        out[i] = preprocess.window_pixels(windows[i, oy:oy + side, ox:ox + side], size)
    return out


JIGSAW_GRID = 4  # tiles per side: 8 px at a model's 32 (12 at 48), 16 px in a 64 px window copy


def none_jigsaw(pixels: np.ndarray, no_face: np.ndarray, windows: np.ndarray | None, rng: np.random.Generator,
                p: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Each no-face picture, with probability `p`, replaced by a face of the same batch cut into a
    JIGSAW_GRID x JIGSAW_GRID grid of tiles put back in a shuffled order: a hard `none` example with a
    face's skin, fabric and colours but not its layout, the confusion the door's admitted no-face
    pictures show (hands, torsos, clothing; docs/presence.md). Its window copy, when there is one, is
    shuffled the same way, so door framing from the window pastes the shuffled face, not the face.
    Faces are left alone and labels do not change; a batch without faces is returned as it is."""
    faces = np.nonzero(~no_face)[0]
    if len(faces) == 0:
        return pixels, windows
    out = pixels.copy()
    out_windows = None if windows is None else windows.copy()
    for i in np.nonzero(no_face & (rng.random(len(pixels)) < p))[0]:
        source = int(faces[rng.integers(len(faces))])
        order = _shuffled_tiles(rng)
        out[i] = jigsaw(pixels[source], order)
        if out_windows is not None:
            out_windows[i] = jigsaw(windows[source], order)
    return out, out_windows


def _shuffled_tiles(rng: np.random.Generator) -> np.ndarray:
    identity = np.arange(JIGSAW_GRID * JIGSAW_GRID)
    while True:
        order = rng.permutation(identity)
        if (order != identity).any():
            return order


def jigsaw(image: np.ndarray, order: np.ndarray) -> np.ndarray:
    """`image` (side, side, c) cut into a JIGSAW_GRID grid; tile k of the result is tile order[k]."""
    side = image.shape[0] // JIGSAW_GRID
    tiles = [image[r * side:(r + 1) * side, c * side:(c + 1) * side]
             for r in range(JIGSAW_GRID) for c in range(JIGSAW_GRID)]
    rows = [np.concatenate([tiles[order[r * JIGSAW_GRID + c]] for c in range(JIGSAW_GRID)], axis=1)
            for r in range(JIGSAW_GRID)]
    return np.concatenate(rows, axis=0)


def shrunk(face: np.ndarray, side: int, shrink: str) -> np.ndarray:
    """uint8 (side, side, 3): the face made smaller by area averaging ("box") or by the board's scaling."""
    if shrink == "board":
        return preprocess.board_downscale(face, side)
    return np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BOX))


def check_window_copy(size: int) -> None:
    """Door framing from the window and --none-zoom sample a model's input from WINDOW_COPY px copies
    of the camera window: enough detail for an input up to WINDOW_COPY px, not beyond."""
    if size > WINDOW_COPY:
        raise UserError(f"a {size}x{size} model input is larger than the {WINDOW_COPY} px camera-window copies that door"
                        f" framing (--doorframe-shrink window) and --none-zoom sample from (host/make/augment.py"
                        f" WINDOW_COPY): use --doorframe-shrink board without --none-zoom, or a design of at most"
                        f" {WINDOW_COPY}x{WINDOW_COPY}")


def window_copies(paths: list, progress: bool = True) -> np.ndarray:
    """uint16 RGB565 (n, WINDOW_COPY, WINDOW_COPY): each picture's camera window (host.preprocess),
    scaled by the board's own bilinear, for door framing from the window."""
    from tqdm import tqdm

    from host.make import data as data_mod  # data imports this module's users, not this module

    out = np.zeros((len(paths), WINDOW_COPY, WINDOW_COPY), np.uint16)
    for i, path in enumerate(tqdm(paths, desc="window copies", unit="img", disable=not progress, leave=False)):
        out[i] = window_copy(data_mod.load_image(path))
    return out


def window_copy(image: Image.Image) -> np.ndarray:
    """One picture's camera window (host.preprocess) at WINDOW_COPY px, by the board's own bilinear."""
    return preprocess.board_downscale_rgb565(preprocess.camera_window_rgb565(image), WINDOW_COPY)


def colour_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random scene: a 2x2 to 6x6 grid of colours upscaled bilinearly, with a little noise."""
    cells = int(rng.integers(2, 7))
    grid = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
    field = _from_uint8(np.asarray(grid.resize((size, size), Image.Resampling.BILINEAR)))
    return np.clip(field + rng.normal(0.0, 0.02, field.shape).astype(np.float32), 0.0, 1.0)


def small_face(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """The board samples S points across the window (S: the model's input, 32 or the design's); a
    face only F < S px across in the source gives it a bilinear upscale of F pixels. F is drawn from
    16..48 whatever S is (F >= S changes nothing)."""
    x = x.copy()
    size = x.shape[1]
    for i in _chosen(rng, len(x), p):
        across = int(rng.integers(16, 49))
        if across >= size:
            continue
        image = Image.fromarray(_to_uint8(x[i]))
        small = image.resize((across, across), Image.Resampling.BOX)
        x[i] = _from_uint8(np.asarray(small.resize((size, size), Image.Resampling.BILINEAR)))
    return x


def blur(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    x = x.copy()
    for i in _chosen(rng, len(x), p):
        if rng.random() < 0.5:
            blurred = Image.fromarray(_to_uint8(x[i])).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
            x[i] = _from_uint8(np.asarray(blurred))
        else:
            from host.make.degrade import box_blur_x  # degrade imports data; only needed here

            x[i] = box_blur_x(x[i], int(rng.integers(2, 5)))
    return x


def white_balance(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    x = x.copy()
    idx = _chosen(rng, len(x), p)
    x[idx] *= rng.uniform(0.8, 1.2, (len(idx), 1, 1, 3)).astype(np.float32)
    return np.clip(x, 0.0, 1.0)


def gamma_light(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    x = x.copy()
    idx = _chosen(rng, len(x), p)
    gamma = rng.uniform(0.6, 2.2, (len(idx), 1, 1, 1)).astype(np.float32)
    gain = rng.uniform(0.3, 1.1, (len(idx), 1, 1, 1)).astype(np.float32)
    x[idx] = np.clip(np.power(np.clip(x[idx], 0.0, 1.0), gamma) * gain, 0.0, 1.0)
    return x


def noise(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    x = x.copy()
    idx = _chosen(rng, len(x), p)
    sigma = rng.uniform(0.01, 0.08, (len(idx), 1, 1, 1)).astype(np.float32)
    x[idx] += rng.normal(0.0, 1.0, x[idx].shape).astype(np.float32) * sigma
    return np.clip(x, 0.0, 1.0)


def jpeg(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    x = x.copy()
    for i in _chosen(rng, len(x), p):
        buffer = io.BytesIO()
        Image.fromarray(_to_uint8(x[i])).save(buffer, format="JPEG", quality=int(rng.integers(15, 71)))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            x[i] = _from_uint8(np.asarray(decoded.convert("RGB")))
    return x


def rgb565(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Back onto the levels the camera can deliver (RGB565 expanded by bit replication)."""
    return _from_uint8(preprocess.rgb565_to_rgb888(preprocess.rgb888_to_rgb565(_to_uint8(x))))


DOOR_FUNCTIONS = {"smallface": small_face, "blur": blur, "wb": white_balance, "light": gamma_light,
                  "noise": noise, "jpeg": jpeg, "rgb565": rgb565}


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.asarray(image) * 255.0).round().clip(0, 255).astype(np.uint8)


def _from_uint8(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0
