"""The presence gate on the host: imlib's `get_statistics` for RGB565, and the firmware's own gate.

The board (firmware/presence.py) asks `img.get_statistics(roi=...)` for a few blocks of the window
and calls a frame `none` when it is dark (covered lens), flat (paper, a blank wall) or has no
structure (every block alike: noise, a plain texture). This module computes those statistics from
an RGB565 array exactly as imlib does, and runs firmware/presence.py's decision on them, so the
simulated board (host/sim/camera.py), the benchmarks and host evaluation share one computation.

imlib facts (openmv/openmv, identical v4.5.6 to v5.0.0; paths as at v4.6.0, `src/omv/` prefix
dropped from v4.7.0):
- `py_image_get_statistics` (modules/py_image.c): RGB565 histograms of L (0..100), A and B
  (-128..127), default bins 101, 256, 256 (`bins`, `l_bins`, `a_bins`, `b_bins` keywords, each >= 2,
  else OSError "bins must be >= 2"); the roi is clipped to the image (OSError "Invalid ROI
  dimensions!" / "ROI does not overlap on the image!", modules/py_helper.c).
- `imlib_get_histogram` (imlib/stats.c): bin = fast_roundf((v - min) * ((bins - 1) / (float)(max -
  min))), round half to even (`vcvtr`); counts scaled by the float 1/pixel_count.
- `imlib_get_statistics`: per channel, float sums over the bins in order of value*p and
  value*value*p; mean = floor(sum), stdev = floor(sqrt(sum2 - mean_f^2)); median, lq, uq: the
  first bin where the running float sum reaches 0.5, 0.25, 0.75; mode: the first largest bin;
  min/max: first/last non-empty bin.
- RGB565 to LAB on the H7 (boards/OPENMV4/imlib_config.h: IMLIB_ENABLE_LAB_LUT) is the table
  `lab_table[(pixel >> 1) * 3 + c]` (imlib/lab_tab.c), made by tools/gen_rgb2lab.py: sRGB to
  CIELAB of each RGB565 value (5/6-bit channels widened as (v * 255 + half) // max), rounded, then
  pairs of neighbouring values averaged and truncated toward zero. `lab_table()` recomputes it;
  it matches all 98,304 entries of lab_tab.c at v4.6.0 (checked when this was written).
- The board's float sums may be fused multiply-adds (GCC contracts to VFMA on the M7 by default);
  UNVERIFIED. That can move a mean or stdev by one only where the float sum sits on an integer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

L_RANGE, A_RANGE, B_RANGE = (0, 100), (-128, 127), (-128, 127)
FIELDS = ("mean", "median", "mode", "stdev", "min", "max", "lq", "uq")


@functools.cache
def lab_table() -> np.ndarray:
    """int8 (32768, 3): L, A, B for RGB565 values 2k and 2k+1 (imlib's lab_table)."""
    i = np.arange(65536)
    r = np.floor((((i >> 11) & 31) * 255 + 15.5) / 31)
    g = np.floor((((i >> 5) & 63) * 255 + 31.5) / 63)
    b = np.floor(((i & 31) * 255 + 15.5) / 31)

    def linear(c):
        c = c / 255.0
        return 100 * np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)

    rl, gl, bl = linear(r), linear(g), linear(b)

    def f(t):
        return np.where(t > 0.008856, np.cbrt(t), 7.787037 * t + 0.137931)

    x = f((rl * 0.4124 + gl * 0.3576 + bl * 0.1805) / 95.047)
    y = f((rl * 0.2126 + gl * 0.7152 + bl * 0.0722) / 100.0)
    z = f((rl * 0.0193 + gl * 0.1192 + bl * 0.9505) / 108.883)
    lab = np.stack([np.round(116 * y) - 16, np.round(500 * (x - y)), np.round(200 * (y - z))], axis=1)
    return np.trunc((lab[0::2] + lab[1::2]) / 2.0).astype(np.int8)


def rgb565_to_lab(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lab = lab_table()[np.asarray(packed, dtype=np.uint16) >> 1]
    return lab[..., 0].astype(np.int32), lab[..., 1].astype(np.int32), lab[..., 2].astype(np.int32)


@dataclass(frozen=True)
class ChannelStats:
    mean: int
    median: int
    mode: int
    stdev: int
    min: int
    max: int
    lq: int
    uq: int


def _histogram(values: np.ndarray, lo: int, hi: int, bins: int, pixels: np.float32) -> np.ndarray:
    mult = np.float32(bins - 1) / np.float32(hi - lo)
    index = np.rint((values - lo).astype(np.float32) * mult).astype(np.int64)  # vcvtr: half to even
    counts = np.bincount(index.ravel(), minlength=bins)[:bins]
    return counts.astype(np.float32) * pixels


def _channel(p: np.ndarray, lo: int, hi: int) -> ChannelStats:
    bins = len(p)
    mult = np.float32(hi - lo) / np.float32(bins - 1)
    value_f = np.arange(bins, dtype=np.float32) * mult + np.float32(lo)
    value = np.floor(value_f).astype(np.int64)
    # the board sums in float32, bin after bin: accumulate (not pairwise sum) does the same
    avg = np.add.accumulate(value_f * p, dtype=np.float32)[-1]
    sq = np.add.accumulate(value_f * value_f * p, dtype=np.float32)[-1]
    before = np.concatenate([[np.float32(0)], np.add.accumulate(p, dtype=np.float32)[:-1]]).astype(np.float32)
    after = (before + p).astype(np.float32)

    def quantile(q):
        q = np.float32(q)
        hit = np.nonzero((before < q) & (q <= after))[0]
        return int(value[hit[-1]]) if len(hit) else 0

    nonzero = np.nonzero(p > 0)[0]
    mode = int(value[int(np.argmax(p))]) if p.max() > 0 else 0
    var = np.float32(sq - avg * avg)
    stdev = int(np.floor(np.sqrt(var))) if var > 0 else 0  # vcvtm of NaN (var < 0) gives 0
    return ChannelStats(
        mean=int(np.floor(avg)), median=quantile(0.5), mode=mode, stdev=stdev,
        min=int(value[nonzero[0]]) if len(nonzero) else 0, max=int(value[nonzero[-1]]) if len(nonzero) else 0,
        lq=quantile(0.25), uq=quantile(0.75))


def clip_roi(width: int, height: int, roi) -> tuple[int, int, int, int]:
    """imlib's roi handling: (x, y, w, h), w and h >= 1, clipped to the image; OSError otherwise."""
    if roi is None:
        return 0, 0, width, height
    x, y, w, h = (int(v) for v in roi)
    if w < 1 or h < 1:
        raise OSError("Invalid ROI dimensions!")
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 >= x1 or y0 >= y1:
        raise OSError("ROI does not overlap on the image!")
    return x0, y0, x1 - x0, y1 - y0


def bin_counts(bins=None, l_bins=None, a_bins=None, b_bins=None) -> tuple[int, int, int]:
    """The L, A and B histogram sizes get_statistics uses (101, 256, 256 by default), refused as the board does."""
    nl = l_bins if l_bins is not None else (bins if bins is not None else L_RANGE[1] - L_RANGE[0] + 1)
    na = a_bins if a_bins is not None else (bins if bins is not None else A_RANGE[1] - A_RANGE[0] + 1)
    nb = b_bins if b_bins is not None else (bins if bins is not None else B_RANGE[1] - B_RANGE[0] + 1)
    for n, name in ((nl, "l_bins"), (na, "a_bins"), (nb, "b_bins")):
        if int(n) < 2:
            raise OSError(f"{name if name != 'l_bins' or bins is None else 'bins'} must be >= 2")
    return int(nl), int(na), int(nb)


def get_statistics(packed: np.ndarray, roi=None, bins=None, l_bins=None, a_bins=None, b_bins=None):
    """(L, A, B) ChannelStats of an RGB565 (h, w) array, as imlib computes them."""
    height, width = packed.shape
    x, y, w, h = clip_roi(width, height, roi)
    nl, na, nb = bin_counts(bins, l_bins, a_bins, b_bins)
    block = packed[y:y + h, x:x + w]
    lch, ach, bch = rgb565_to_lab(block)
    pixels = np.float32(1.0) / np.float32(w * h)
    return tuple(_channel(_histogram(v, lo, hi, int(n), pixels), lo, hi)
                 for v, (lo, hi), n in ((lch, L_RANGE, nl), (ach, A_RANGE, na), (bch, B_RANGE, nb)))


class Statistics:
    """image.statistics: l_mean() ... b_uq(), mean() etc. for L, and indexing 0..23."""

    def __init__(self, channels):
        self._values = tuple(getattr(c, name) for c in channels for name in FIELDS)
        for ci, prefix in enumerate(("l_", "a_", "b_")):
            for fi, name in enumerate(FIELDS):
                setattr(self, prefix + name, functools.partial(self._values.__getitem__, ci * 8 + fi))
        for fi, name in enumerate(FIELDS):
            setattr(self, name, functools.partial(self._values.__getitem__, fi))

    def __getitem__(self, index):
        return self._values[index]

    def __len__(self):
        return len(self._values)


class ArrayImage:
    """The part of image.Image the gate uses, over an RGB565 array (host evaluation)."""

    def __init__(self, packed: np.ndarray):
        self.rgb565 = packed

    def width(self) -> int:
        return int(self.rgb565.shape[1])

    def height(self) -> int:
        return int(self.rgb565.shape[0])

    def get_statistics(self, roi=None, bins=None, l_bins=None, a_bins=None, b_bins=None, **unsupported):
        if unsupported:
            raise NotImplementedError(f"get_statistics({', '.join(unsupported)}=...) is not modelled")
        return Statistics(get_statistics(self.rgb565, roi, bins, l_bins, a_bins, b_bins))


def presence_module():
    from tools.payload import firmware_module

    return firmware_module("presence")


def gate_config(overrides: dict | None = None) -> dict:
    """The presence_* settings: schema defaults (firmware/tmconfig.py) and overrides."""
    from tools.payload import tmconfig

    config, errors = tmconfig().validate(dict(overrides or {}))
    if errors:
        from host.errors import UserError

        raise UserError(f"presence gate settings: {errors[0]}")
    return config


class HostGate:
    """firmware/presence.py's Gate over RGB565 arrays: the same decision the board makes."""

    def __init__(self, config: dict | None = None):
        self.gate = presence_module().Gate(config if config is not None else gate_config())

    def reason(self, packed: np.ndarray) -> str | None:
        """None if the frame may hold a face, else why not ('dark', 'flat', 'plain')."""
        return self.gate.check(ArrayImage(packed))


def admitted(reasons: list[str | None]) -> int:
    return sum(1 for r in reasons if r is None)


class DoorJudge:
    """Would the door logic count this frame as "a masked face"? firmware/presence.py, infer.py and
    door.py decide, on the window's pixels and the model's outputs, as on the board."""

    def __init__(self, config: dict):
        from tools.payload import firmware_module

        self.config = config
        self.gate = presence_module().Gate(config)
        self.model = firmware_module("infer").Model(config)
        self.door = firmware_module("door").Door(config["threshold"], config["debounce_frames"], config["open_ms"])

    def judge(self, window_rgb565: np.ndarray, outputs, gate: bool = True) -> tuple[str, float, bool]:
        """(logged label, P(positive), a face is present) for one frame."""
        reason = self.gate.check(ArrayImage(window_rgb565)) if gate else None
        score = self.model.judge([float(v) for v in np.ravel(outputs)])
        present = self.model.judge_presence(reason)
        return self.model.label, score, present

    def masked(self, window_rgb565: np.ndarray, outputs, gate: bool = True) -> bool:
        _, score, present = self.judge(window_rgb565, outputs, gate)
        return present and self.door.classify(score) == "mask"


def admission(windows, outputs, config: dict) -> dict:
    """How many frames the door logic treats as masked, with and without the presence gate.
    windows: RGB565 arrays; outputs: the model's dequantized outputs for each (same order).
    For no-face frames this is "no-face frames admitted"; for face images, the admission rates."""
    judge = DoorJudge(config)
    with_gate = without_gate = total = 0
    for window, out in zip(windows, outputs):
        total += 1
        with_gate += judge.masked(window, out, gate=True)
        without_gate += judge.masked(window, out, gate=False)
    return {"frames": total, "admitted_with_gate": with_gate, "admitted_without_gate": without_gate}


def check_gate_labels(labels: list[str], positive_label: str, none_label: str, output_kind: str, where: str) -> None:
    """Refuse (UserError, one line) a bundle whose labels do not give the firmware what its "nobody
    there" rule needs: frames without a face are logged as none_label, and a model class of that
    name is read as "no face"."""
    from host.errors import UserError

    labels = list(labels)
    if none_label == positive_label:
        raise UserError(f"{where}: none_label {none_label!r} is also the positive label; "
                        "the door would open for nobody: rebuild the bundle with distinct labels")
    if none_label in labels and output_kind != "softmax":
        raise UserError(f"{where}: label {none_label!r} names a class of a {output_kind} model, but the firmware "
                        f"logs frames without a face as {none_label!r}: rename the class or use a softmax model "
                        "with a none class")
    if output_kind == "softmax" and len(labels) > 2 and none_label not in labels:
        raise UserError(f"{where}: labels {labels} have no {none_label!r} class for 'nobody there'; "
                        f"set \"none_label\" in the model card to the no-face class or rebuild the bundle")
