"""OpenMV's Haar cascade detector (`image.HaarCascade`, `img.find_features`), ported to numpy.

Issue 16 option (a) asks whether the firmware's own face detector finds masked faces at a door.
This port answers it on the detector the board runs, integer for integer, not on OpenCV's cousin
of it; it agrees exactly with the C compiled on the host (tests/test_haar.py holds C results).
Sources are openmv/openmv at v4.8.1; the detection code is the same at v4.5.5 and v4.6.0 (there
under src/omv/imlib/, with xalloc for m_malloc):

- Grayscale: IM_TO_GS_PIXEL (lib/imlib/imlib.h:882-883) reads an RGB565 pixel through
  COLOR_RGB565_TO_Y (298-305): channels widened by bit replication (271-292), then
  (38 R + 75 G + 15 B) >> 7 (297). A GRAYSCALE image is read as is.
- Integral images (lib/imlib/integral_mw.c): a moving window of window.h + 1 rows (78-92) whose
  rows hold inclusive sums from the top of the image, so every value equals the full inclusive
  integral image's. Scaled pixel (r, c) is source pixel ((r * y_ratio) >> 16, (c * x_ratio) >> 16)
  with ratio = (roi << 16) / scaled + 1 (102-111, 237-311): nearest-neighbour, no averaging. A
  lookup (x, y, w, h) (313-318) sums rows y+1..y+h and columns x+1..x+w.
- Scan (imlib_detect_objects, lib/imlib/haar.c:93-180): step = roi.w * 50 / 1000 capped at
  window.h; factor starts at 1 and is multiplied by scale_factor in float32 while roi / factor
  (truncated) still holds the window; at each scale step = (int)(step / factor), at least 1, which
  divides the previous scale's step, not the first one; windows at y < szh - window.h and
  x < szw - window.w, so the last position is never scanned. A hit at (x, y) is
  (round(x * factor), round(y * factor), round(window * factor)) with fast_roundf
  (lib/imlib/fmath.h:94-104), vcvtr.S32.F32 on the Cortex-M7: round half to even, the FPSCR mode
  the firmware never changes (the C's host fallback, roundf, rounds halves away from zero).
- A window (run_cascade_classifier, haar.c:62-91): uint32 mean and variance, variance < 50 * 50
  rejects; std = (int) sqrtf((float) (i_sq * n - i_s * i_s)), the product wrapping at 2**32 for
  windows with a standard deviation above about 114. Each feature (eval_weak_classifier, 39-60)
  sums its rectangles times weight << 12 in int32 and takes alpha2 when that sum >= tree_thresh *
  std, alpha1 otherwise; a stage rejects when its sum < threshold * stage_thresh, in float32.
- Merge (rectangle_merge, lib/imlib/rectangle.c:88-115), only when there is more than one hit:
  the first hit takes every later one that strictly intersects it, one pass and not transitive,
  and the group is averaged with int16 sums and C division.
- find_features (modules/py_image.c:5949-5981) defaults to threshold 0.5, scale_factor 1.5 and
  the whole image as roi (modules/py_helper.c:252-257); OpenMV's example passes threshold=0.75,
  scale_factor=1.25 (scripts/examples/03-Machine-Learning/02-Haar-Cascade/face_detection.py:49).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from xml.dom import minidom
from xml.parsers.expat import ExpatError

import numpy as np

from host.preprocess import rgb565_to_rgb888

VARIANCE_FLOOR = 50 * 50
STEP_PER_MILLE = 50
EXAMPLE_THRESHOLD = 0.75
EXAMPLE_SCALE_FACTOR = 1.25
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Stage:
    """One stage's features, padded to the cascade's most rectangles per feature (weight 0)."""

    threshold: int
    feature_thresholds: np.ndarray
    alpha1: np.ndarray
    alpha2: np.ndarray
    rects: np.ndarray
    weights: np.ndarray
    rectangles: int

    @property
    def features(self) -> int:
        return len(self.feature_thresholds)


@dataclass(frozen=True)
class Cascade:
    """A cascade as imlib's cascade_t holds it (lib/imlib/imlib.h:949-969), fixed point as stored:
    stage thresholds and alphas x256, feature thresholds x4096 (tools/haar2c.py:278-291)."""

    width: int
    height: int
    stages: tuple[Stage, ...]

    def truncated(self, stages: int) -> Cascade:
        """HaarCascade(path, stages=N) (modules/py_image.c:6896-6900): the first N stages when
        0 < N < n_stages, else the whole cascade."""
        return replace(self, stages=self.stages[:stages]) if 0 < stages < len(self.stages) else self

    @property
    def features(self) -> int:
        return sum(s.features for s in self.stages)

    @property
    def rectangles(self) -> int:
        return sum(s.rectangles for s in self.stages)


def build_cascade(width, height, stage_features, stage_thresholds, feature_thresholds, alpha1, alpha2,
                  rect_counts, weights, rects) -> Cascade:
    """A Cascade from the flat arrays of cascade_t, split by stage the way run_cascade_classifier
    walks them (t_idx, w_idx and r_idx advance feature by feature)."""
    counts = np.asarray(rect_counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    weights = np.asarray(weights, dtype=np.int64)
    stages, first = [], 0
    for threshold, count in zip(stage_thresholds, stage_features):
        features = slice(first, first + int(count))
        padded_rects, padded_weights = _padded(rects, weights, counts, starts, features, int(counts.max()))
        stages.append(Stage(int(threshold), *(np.asarray(a[features], dtype=np.int64)
                                              for a in (feature_thresholds, alpha1, alpha2)),
                            padded_rects, padded_weights, int(counts[features].sum())))
        first = features.stop
    return Cascade(int(width), int(height), tuple(stages))


def _padded(rects, weights, counts, starts, features: slice, widest: int) -> tuple[np.ndarray, np.ndarray]:
    """A stage's rectangles (F, widest, 4) and weights << 12 (F, widest); missing slots weigh 0."""
    out_rects = np.zeros((features.stop - features.start, widest, 4), dtype=np.int64)
    out_weights = np.zeros((features.stop - features.start, widest), dtype=np.int64)
    for row, feature in enumerate(range(features.start, features.stop)):
        span = slice(starts[feature], starts[feature + 1])
        out_rects[row, : counts[feature]] = rects[span]
        out_weights[row, : counts[feature]] = weights[span] * 4096
    return out_rects, out_weights


def load_cascade(data: bytes, stages: int = 0) -> Cascade:
    """A cascade from OpenMV's source in any of its three forms, sniffed from the bytes:

    - the binary `.cascade` haar.c reads (lib/imlib/haar.c:189-290), what v4.7.0+ firmware keeps
      in ROMFS as /rom/haarcascade_frontalface.cascade (tools/mkromfs.py:88-91 runs
      tools/haar2c.py on lib/haar/haarcascade_frontalface.xml, boards/OPENMV4/romfs.json:16-20);
    - the C header the v4.5.5/v4.6.0 firmware compiled in as HaarCascade("frontalface")
      (src/omv/imlib/cascade.h, loaded by imlib_load_cascade, v4.6.0 src/omv/imlib/haar.c:266-317);
    - the OpenCV XML, converted as tools/haar2c.py's cascade_binary_old does (v4.8.1:219-312).

    All three give the same 25-stage frontalface (tests/test_haar.py checks it)."""
    head = data.lstrip()[:5]
    if head.startswith(b"<"):
        cascade = parse_xml(data)
    elif head.startswith((b"//", b"/*", b"const", b"#")):
        cascade = parse_header(data.decode("ascii"))
    else:
        cascade = parse_binary(data)
    return cascade.truncated(stages)


def parse_binary(data: bytes) -> Cascade:
    """haar2c's layout: int32 window w, h and stage count; uint8 features per stage, zero padded to
    4 bytes; int16 stage thresholds, feature thresholds, alpha1, alpha2; int8 rectangles per
    feature, int8 weight per rectangle, int8 x, y, w, h per rectangle; little endian."""
    if len(data) < 12:
        raise ValueError(f"cascade of {len(data)} bytes: too short for the 12-byte header")
    width, height, n_stages = struct.unpack_from("<3i", data)
    reader = _Reader(data, 12)
    stage_features = reader.take(np.uint8, n_stages)
    reader.offset += -(12 + n_stages) % 4
    n_features = int(stage_features.sum())
    stage_thresholds = reader.take("<i2", n_stages)
    tables = [reader.take("<i2", n_features) for _ in range(3)]
    rect_counts = reader.take(np.int8, n_features)
    n_rects = int(rect_counts.astype(np.int64).sum())
    weights = reader.take(np.int8, n_rects)
    rects = reader.take(np.int8, 4 * n_rects)
    return build_cascade(width, height, stage_features, stage_thresholds, *tables, rect_counts, weights, rects)


@dataclass
class _Reader:
    data: bytes
    offset: int

    def take(self, dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.offset + size > len(self.data):
            raise ValueError(f"cascade truncated: needs {self.offset + size} bytes, has {len(self.data)}")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += size
        return out


def parse_header(text: str, name: str = "frontalface") -> Cascade:
    """The generated cascade.h: `const <type> <name>_<field>[]={...};` and scalar window and stage
    count constants (written by tools/haar2c.py's cascade_header, v4.8.1:315-)."""
    fields = {}
    for key, value in re.findall(rf"const\s+\w+\s+{name}_(\w+?)(?:\[\])?\s*=\s*\{{?([^;{{}}]*)\}}?\s*;", text):
        fields[key] = np.array([int(v) for v in value.split(",") if v.strip()], dtype=np.int64)
    missing = {"window_w", "window_h", "stages_array"} - set(fields)
    if missing:
        raise ValueError(f"no {name} cascade in this header (missing {', '.join(sorted(missing))})")
    return build_cascade(fields["window_w"][0], fields["window_h"][0], fields["stages_array"],
                         fields["stages_thresh_array"], fields["tree_thresh_array"], fields["alpha1_array"],
                         fields["alpha2_array"], fields["num_rectangles_array"], fields["weights_array"],
                         fields["rectangles_array"])


def parse_xml(data: bytes) -> Cascade:
    """An old-format OpenCV cascade (<trees>, <stage_threshold>) converted as haar2c does: values
    scaled and truncated by int(), features in document order. The new format (<stageNum>) maps
    features through <internalNodes>; convert it with tools/haar2c.py and pass the .cascade."""
    try:
        doc = minidom.parseString(data)
    except ExpatError as exc:
        raise ValueError(f"not a cascade XML: {exc}") from None
    if doc.getElementsByTagName("stageNum").length:
        raise ValueError("new-format cascade XML: convert it with OpenMV's tools/haar2c.py and pass the .cascade")
    stage_features = [len(t.childNodes) // 2 for t in doc.getElementsByTagName("trees")]
    n = sum(stage_features)

    def scaled(tag: str, scale: int, count: int) -> list[int]:
        return [int(float(e.childNodes[0].nodeValue) * scale) for e in doc.getElementsByTagName(tag)[:count]]

    rect_rows = [[[int(v) for v in r.childNodes[0].nodeValue[:-1].split()] for r in f.getElementsByTagName("_")]
                 for f in doc.getElementsByTagName("rects")[:n]]
    width, height = (int(v) for v in doc.getElementsByTagName("size")[0].childNodes[0].nodeValue.split())
    return build_cascade(width, height, stage_features, scaled("stage_threshold", 256, len(stage_features)),
                         scaled("threshold", 4096, n), scaled("left_val", 256, n), scaled("right_val", 256, n),
                         [len(rows) for rows in rect_rows], [r[4] for rows in rect_rows for r in rows],
                         [r[:4] for rows in rect_rows for r in rows])


def grayscale(window: np.ndarray) -> np.ndarray:
    """IM_TO_GS_PIXEL: uint8 pixels as is, uint16 RGB565 through COLOR_RGB565_TO_Y."""
    if window.dtype == np.uint8:
        return window
    rgb = rgb565_to_rgb888(window).astype(np.int32)
    return ((rgb[..., 0] * 38 + rgb[..., 1] * 75 + rgb[..., 2] * 15) >> 7).astype(np.uint8)


@dataclass(frozen=True)
class Scale:
    """One level of imlib's pyramid: the float32 factor, the scaled size and the scan step."""

    factor: np.float32
    width: int
    height: int
    step: int


def pyramid(roi_w: int, roi_h: int, window_w: int, window_h: int, scale_factor: float) -> list[Scale]:
    """The scales imlib_detect_objects visits (haar.c:113-144), float32 as on the board."""
    if not np.float32(scale_factor) > 1:
        raise ValueError(f"scale_factor {scale_factor} must be above 1: the firmware's scale loop never ends otherwise")
    step = min(roi_w * STEP_PER_MILLE // 1000, window_h)
    factor, out = np.float32(1.0), []
    while True:
        width, height = int(np.float32(roi_w) / factor), int(np.float32(roi_h) / factor)
        if width < window_w or height < window_h:
            return out
        step = max(int(np.float32(step) / factor), 1)
        out.append(Scale(factor, width, height, step))
        factor = np.float32(factor * np.float32(scale_factor))


@dataclass
class Work:
    """What one detection cost, counted the way the C does the work: window positions scanned,
    those past the variance check (a square root each), stage evaluations, weak classifiers
    evaluated (a multiply-add per rectangle and a compare each), rectangle lookups (four integral
    reads each) and scaled pixels accumulated into the sum and squared-sum rows (an RGB565-to-Y
    conversion, a multiply and two adds each)."""

    windows: int = 0
    scored: int = 0
    stages: int = 0
    features: int = 0
    rectangles: int = 0
    integral_pixels: int = 0

    def add(self, other: Work) -> None:
        for name in ("windows", "scored", "stages", "features", "rectangles", "integral_pixels"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def detect(window: np.ndarray, cascade: Cascade, threshold: float = 0.5, scale_factor: float = 1.5,
           work: Work | None = None) -> list[Rect]:
    """img.find_features(cascade, threshold, scale_factor) on a whole uint16 RGB565 (or uint8
    GRAYSCALE) image: the merged (x, y, w, h) rectangles, in the firmware's order."""
    height, width = window.shape
    if not (width > cascade.width and height > cascade.height):
        raise ValueError("Region of interest is smaller than detector window!")  # py_image.c:5959-5960
    gray = grayscale(window)
    hits: list[Rect] = []
    for scale in pyramid(width, height, cascade.width, cascade.height, scale_factor):
        hits.extend(_scan(gray, cascade, np.float32(threshold), scale, work))
    return merge(hits) if len(hits) > 1 else hits


def _scan(gray: np.ndarray, cascade: Cascade, threshold: np.float32, scale: Scale, work: Work | None) -> list[Rect]:
    """Every window of one scale, stage by stage over the windows still alive, in the C's order."""
    scaled = scaled_gray(gray, scale).astype(np.int64)
    sums, squares = integral(scaled).ravel(), integral(scaled * scaled).ravel()
    ys = np.arange(0, scale.height - cascade.height, scale.step)
    xs = np.arange(0, scale.width - cascade.width, scale.step)
    wy, wx = np.repeat(ys, len(xs)), np.tile(xs, len(ys))
    base = wy * scale.width + wx
    std, alive = _normalisation(sums, squares, base, cascade, scale.width)
    counts = Work(windows=len(base), scored=int(alive.sum()))
    index = np.flatnonzero(alive)
    for stage in cascade.stages:
        if not len(index):
            break
        counts.stages += len(index)
        counts.features += len(index) * stage.features
        counts.rectangles += len(index) * stage.rectangles
        index = index[_stage_passes(stage, sums, base[index], std[index], scale.width, threshold)]
    if work is not None:
        counts.integral_pixels = (cascade.height + 1 + max(len(ys) - 1, 0) * scale.step) * scale.width
        work.add(counts)
    return [_hit_rect(int(wx[i]), int(wy[i]), cascade, scale.factor) for i in index]


def _normalisation(sums, squares, base, cascade: Cascade, width: int) -> tuple[np.ndarray, np.ndarray]:
    """run_cascade_classifier's prologue (haar.c:63-76) for many windows: (std, variance >= 2500),
    in uint32 as the C, the std's i_sq * n - i_s * i_s wrapping at 2**32."""
    corners = _corners(np.array([0, 0, cascade.width, cascade.height]), width)
    i_s, i_sq = _lookup(sums, base, corners), _lookup(squares, base, corners)
    n = cascade.width * cascade.height
    mean = i_s // n
    alive = ((i_sq // n - mean * mean) & 0xFFFFFFFF) >= VARIANCE_FLOOR
    std = np.sqrt(((i_sq * n - i_s * i_s) & 0xFFFFFFFF).astype(np.float32)).astype(np.int64)
    return std, alive


def scaled_gray(gray: np.ndarray, scale: Scale) -> np.ndarray:
    """The pixels imlib_integral_mw_ss reads at one scale: nearest neighbour through the 16.16
    ratios of imlib_integral_mw_scale, (source << 16) / scaled + 1."""
    height, width = gray.shape
    rows = (np.arange(scale.height) * (((height << 16) // scale.height) + 1)) >> 16
    cols = (np.arange(scale.width) * (((width << 16) // scale.width) + 1)) >> 16
    return gray[rows][:, cols]


def integral(image: np.ndarray) -> np.ndarray:
    """Inclusive integral image, int64: [r, c] sums rows 0..r and columns 0..c. imlib keeps it in
    uint32, which can wrap on a large image, but it only ever subtracts four of them for a window
    or rectangle whose true sum fits 32 bits, so the results are the same."""
    return image.astype(np.int64).cumsum(0).cumsum(1)


def lookup(table: np.ndarray, x: int, y: int, w: int, h: int) -> int:
    """imlib_integral_mw_lookup on an integral image: the sum of rows y+1..y+h, columns x+1..x+w."""
    width = table.shape[1]
    return int(_lookup(table.ravel(), np.array(0), _corners(np.array([x, y, w, h]), width)))


def _stage_passes(stage: Stage, sums: np.ndarray, base: np.ndarray, std: np.ndarray, width: int,
                  threshold: np.float32) -> np.ndarray:
    """run_cascade_classifier's inner loop for one stage over many windows: which of them go on."""
    feature_sums = _lookup(sums, base[:, None, None], _corners(stage.rects, width))
    weighted = _wrap32((feature_sums * stage.weights).sum(axis=-1))
    tree = _wrap32(stage.feature_thresholds[None, :] * std[:, None])
    votes = np.where(weighted >= tree, stage.alpha2, stage.alpha1).sum(axis=1)
    return ~(votes.astype(np.float32) < threshold * np.float32(stage.threshold))


def _corners(rects: np.ndarray, width: int) -> np.ndarray:
    """Flat offsets of imlib_integral_mw_lookup's four reads for (x, y, w, h) rectangles."""
    x, y, w, h = (rects[..., i] for i in range(4))
    return np.stack([(y + h) * width + x + w, y * width + x, y * width + x + w, (y + h) * width + x], axis=-1)


def _lookup(table: np.ndarray, base, corners: np.ndarray) -> np.ndarray:
    """PIXEL_AT(w+x, h+y) + PIXEL_AT(x, y) - PIXEL_AT(w+x, y) - PIXEL_AT(x, h+y) over a flat table."""
    at = base[..., None] + corners
    return table[at[..., 0]] + table[at[..., 1]] - table[at[..., 2]] - table[at[..., 3]]


def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _hit_rect(x: int, y: int, cascade: Cascade, factor: np.float32) -> Rect:
    """rectangle_alloc(fast_roundf(x * factor), ...): float32 products rounded half to even."""
    return tuple(int(np.rint(np.float32(v) * factor)) for v in (x, y, cascade.width, cascade.height))


def merge(rects: list[Rect]) -> list[Rect]:
    """rectangle_merge (lib/imlib/rectangle.c:88-115)."""
    pending, out = list(rects), []
    while pending:
        first = pending.pop(0)
        group = [r for r in pending if intersects(first, r)]
        pending = [r for r in pending if not intersects(first, r)]
        out.append(tuple(_c_div(_wrap16(sum(values)), len(group) + 1) for values in zip(first, *group)))
    return out


def intersects(a: Rect, b: Rect) -> bool:
    """rectangle_intersects (lib/imlib/rectangle.c:42-47): overlap of positive area, edges excluded."""
    return a[0] < b[0] + b[2] and a[1] < b[1] + b[3] and a[0] + a[2] > b[0] and a[1] + a[3] > b[1]


def _wrap16(value: int) -> int:
    return ((value + (1 << 15)) & 0xFFFF) - (1 << 15)


def _c_div(value: int, divisor: int) -> int:
    quotient = abs(value) // divisor
    return quotient if value >= 0 else -quotient
