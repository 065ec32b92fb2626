"""Out-of-domain measures and the door threshold (issues 13 and 16).

Every measure is per frame on the int8 model (TFLM, the board's kernels). The door admits a frame
when P(with_mask) >= the door threshold and above its no-mask band (`evaluate.door_admits`, as
firmware/door.py decides); for a softmax model P(with_mask) is its
`with_mask` output, so at any threshold >= 0.5 an admitted frame is also labelled `with_mask`.

- unmasked admitted: share of `without_mask` images admitted (the unsafe error);
- masked admitted: share of `with_mask` images admitted;
- no-face admitted: share of `none` images (scenes-negative) admitted;
- balanced accuracy: the mean recall over the classes present that the model can answer (a
  two-class model cannot answer `none`, so a negatives-only set has no balanced accuracy).

The door threshold is the lowest int8 output level (k/256, at least 0.5) at which at most
`MAX_UNMASKED_ADMITTED` of the out-of-domain set's unmasked faces are admitted: the most masked
faces admitted for that safety target. A stricter door may also ask for at most `max_no_face` of the
no-face pictures (`--max-no-face` of build and calibrate): the threshold is then the lowest level
that meets both targets, and the masked faces it turns back are the price, stated in the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageStat

from host.errors import UserError
from host.make import data as data_mod
from host.make import degrade, evaluate

MAX_UNMASKED_ADMITTED = 0.01
INT8_LEVELS = np.arange(128, 256) / 256.0  # a softmax/sigmoid int8 output has scale 1/256
NEGATIVE, POSITIVE, NONE = (data_mod.LABELS_WITH_NONE.index(x) for x in data_mod.LABELS_WITH_NONE)


@dataclass
class Scored:
    """One evaluation set: true labels, int8 outputs (n, k), where it came from."""
    name: str
    labels: np.ndarray
    outputs: np.ndarray
    description: str

    @property
    def scores(self) -> np.ndarray:
        return evaluate.positive_scores(self.outputs)


def door_figures(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Admitted shares per true class at the threshold; None where the set has no such image."""
    admitted = evaluate.door_admits(scores, threshold)
    out = {}
    for key, cls in (("unmasked_admitted", NEGATIVE), ("masked_admitted", POSITIVE), ("no_face_admitted", NONE)):
        members = labels == cls
        out[key] = float(admitted[members].mean()) if members.any() else None
        out[key.replace("admitted", "images")] = int(members.sum())
    return out


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float | None:
    recalls = [float((predicted[labels == c] == c).mean()) for c in range(classes) if (labels == c).any()]
    return float(np.mean(recalls)) if recalls else None


def calibrate(scores: np.ndarray, labels: np.ndarray, max_share: float = MAX_UNMASKED_ADMITTED,
              cls: int = NEGATIVE) -> float:
    """Lowest int8 level >= 0.5 with at most `max_share` of the images of class `cls` (unmasked
    faces unless told) admitted; the highest level when none reaches it."""
    members = scores[labels == cls]
    for level in INT8_LEVELS:
        if not len(members) or float(evaluate.door_admits(members, level).mean()) <= max_share + 1e-9:
            return float(level)
    return float(INT8_LEVELS[-1])


def door_threshold(close_up: Scored, framed: Scored | None = None, nobody: Scored | None = None,
                   max_no_face: float | None = None) -> float:
    """The door sees faces close up and framed with their surroundings: the lowest level at which
    at most `MAX_UNMASKED_ADMITTED` of the unmasked faces of each are admitted, and, with
    `max_no_face`, at most that share of `nobody`'s no-face pictures. Admission only falls as the
    level rises, so the highest of the per-target levels meets every target."""
    threshold = calibrate(close_up.scores, close_up.labels)
    if framed is not None:
        threshold = max(threshold, calibrate(framed.scores, framed.labels))
    if max_no_face is not None and nobody is not None:
        threshold = max(threshold, calibrate(nobody.scores, nobody.labels, max_no_face, NONE))
    return threshold


def check_share(value: float | None, flag: str) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise UserError(f"{flag} {value}: a share of the pictures from 0 to 1, e.g. {flag} 0.02 for 2%")
    return value


def operating_points(close_up: Scored, framed: Scored, nobody: Scored) -> dict[str, np.ndarray]:
    """Every int8 level at or above the door threshold, with the shares admitted there: no-face
    pictures of `nobody`, masked faces close up and door-framed (benchmarks/bench_tradeoff.py)."""
    levels = INT8_LEVELS[INT8_LEVELS >= door_threshold(close_up, framed)]

    def admitted(s: Scored, cls: int) -> np.ndarray:
        scores = s.scores[s.labels == cls]
        if not len(scores):
            raise ValueError(f"{s.name} has no images of class {cls}")
        return evaluate.door_admits(scores[None, :], levels[:, None]).mean(axis=1)

    return {"level": levels, "no_face": admitted(nobody, NONE), "close": admitted(close_up, POSITIVE),
            "framed": admitted(framed, POSITIVE)}


def none_cap_at_zero(close: Scored, framed: Scored, nobody: Scored) -> dict:
    """A second rule tried for issue 16 (not in the firmware): at the build's threshold, a frame also
    needs P(none) <= cap. The largest int8 cap that admits none of `nobody`'s pictures, and the masked
    faces admitted there (None for a 2-class model or when even cap 0 admits one)."""
    if close.outputs.shape[1] < 3:
        return {"cap": None}
    level = door_threshold(close, framed)

    def admitted(s: Scored, cap: float) -> np.ndarray:
        return evaluate.door_admits(s.scores, level) & (s.outputs[:, NONE] <= cap + 1e-9)

    caps = [c for c in np.arange(256) / 256.0 if not admitted(nobody, c).any()]
    if not caps:
        return {"cap": None}
    cap = caps[-1]
    return {"cap": cap, "cap_close": float(admitted(close, cap)[close.labels == POSITIVE].mean()),
            "cap_framed": float(admitted(framed, cap)[framed.labels == POSITIVE].mean())}


def first_at_no_face(points: dict[str, np.ndarray], target: float) -> int | None:
    """Index of the lowest level admitting at most `target` of the no-face pictures; None when even
    the top level admits more."""
    ok = np.nonzero(points["no_face"] <= target + 1e-9)[0]
    return int(ok[0]) if len(ok) else None


def masked_at_no_face(points: dict[str, np.ndarray], target: float) -> tuple[float, float] | None:
    """(close up, door-framed) masked admission at `first_at_no_face`."""
    i = first_at_no_face(points, target)
    return None if i is None else (float(points["close"][i]), float(points["framed"][i]))


def score_split(payload: bytes, split: data_mod.Split, name: str, description: str, progress: bool = False) -> Scored:
    return Scored(name, np.asarray(split.labels), evaluate.int8_outputs(payload, split.pixels, progress), description)


def degraded_splits(test: data_mod.Split, names: list[str] | None = None) -> dict[str, data_mod.Split]:
    """The test split under each host.make.degrade degradation (board path after each)."""
    windows = degrade.camera_windows(test.paths)
    return {n: degrade.degraded_split(test, windows, n) for n in (names or list(degrade.DEGRADATIONS))}


def door_framed_split(split: data_mod.Split, scene_paths: list, seed: int = 13,
                      fractions: tuple[float, float] = (0.4, 0.7), flat: bool = False,
                      scene_of: list | None = None) -> data_mod.Split:
    """Every face of `split` as a door camera frames it (host.framing.door_frame: 40-70% of the
    window, in a real scene), through the board's scaling; `none` images are left out. The scenes
    should be pictures no training image comes from (scenes-negative test). With `flat`, each scene
    is replaced by its own mean colour (the same face, size and place: what the scene adds); each
    face's scene index is appended to `scene_of` when given. The pixels are at the split's size; the
    split made again at another (`Split.at`) frames the same faces in the same scenes and places."""
    from host import framing, preprocess

    faces = np.nonzero(np.asarray(split.labels) != NONE)[0]

    def pixels_at(size: int, scene_of: list | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        scenes = [data_mod.load_image(p) for p in scene_paths]
        if flat:
            scenes = [Image.new("RGB", s.size, tuple(int(round(c)) for c in ImageStat.Stat(s.convert("RGB")).mean))
                      for s in scenes]
        pixels = np.zeros((len(faces), size, size, 3), np.uint8)
        for row, i in enumerate(faces):
            scene = int(rng.integers(len(scenes)))
            if scene_of is not None:
                scene_of.append(scene)
            window = framing.door_frame(data_mod.load_image(split.paths[i]), scenes[scene],
                                        float(rng.uniform(*fractions)), rng)
            pixels[row] = preprocess.window_pixels(window, size)
        return pixels

    picked = split.subset(faces)
    return data_mod.Split(pixels_at(split.size, scene_of), picked.labels, picked.groups, picked.paths, picked.sources,
                          remake=pixels_at)


def report(sets: list[Scored], threshold: float) -> dict:
    """Per set: balanced accuracy (the firmware's label rule) and the door figures at the threshold."""
    out = {}
    for s in sets:
        classes = s.outputs.shape[1] if s.outputs.shape[1] > 1 else 2
        predicted = evaluate.predicted_labels(s.outputs)
        out[s.name] = {"description": s.description, "images": int(len(s.labels)),
                       "balanced_accuracy": balanced_accuracy(s.labels, predicted, classes),
                       "accuracy": float((predicted == s.labels).mean()) if len(s.labels) else None,
                       **door_figures(s.scores, s.labels, threshold)}
    return out


def table(measures: dict, threshold: float) -> str:
    def pct(v):
        return "     -" if v is None else f"{v * 100:6.2f}"

    lines = [f"door threshold {threshold:.4f}: a frame opens the door when P(with_mask) >= it",
             f"{'set':28}{'images':>7}{'bal.acc':>9}{'unmasked adm.':>15}{'masked adm.':>13}{'no-face adm.':>14}"]
    for name, m in measures.items():
        lines.append(f"{name:28}{m['images']:>7}{pct(m['balanced_accuracy']):>9}{pct(m['unmasked_admitted']):>15}"
                     f"{pct(m['masked_admitted']):>13}{pct(m['no_face_admitted']):>14}")
    return "\n".join(lines)


# ---- what host.build runs and writes ----------------------------------------------------------------


def default_eval_dirs(dataset: data_mod.Dataset) -> list:
    """The shared out-of-domain sets the build did not train on (their test splits)."""
    used = {r.name for r in dataset.roots} | {dataset.root.name}
    return [data_mod.SHARED_DATASETS / n for n in data_mod.DEFAULT_SETS[1:]
            if n not in used and (data_mod.SHARED_DATASETS / n).is_dir()]


def eval_splits(dataset: data_mod.Dataset, eval_dirs=None, limit: int | None = None) -> dict[str, tuple[data_mod.Split, str]]:
    """name -> (split, description) of every out-of-domain set: held-out test splits of the sets
    trained on, and the test splits of `eval_dirs` (default: `default_eval_dirs`)."""
    out = {name: (split, f"{name} test split (held out of training)") for name, split in dataset.held_out.items()}
    for folder in default_eval_dirs(dataset) if eval_dirs is None else eval_dirs:
        if eval_dirs is not None and not Path(folder).is_dir():
            raise UserError(f"--eval-data {folder}: no such folder; name a folder with a test split (or leave the"
                            " option out for the shared sets the bundle did not train on)")
        split, _ = data_mod.load_test_split(folder, limit=limit, progress=False, size=dataset.size)
        out[folder.name] = (split, f"{folder.name} test split (not a training set)")
    face_sets = [n for n, (s, _) in out.items() if _has_both_face_classes(s.labels)]
    scenes_root = data_mod.SHARED_DATASETS / "scenes-negative"
    if face_sets and (scenes_root / "manifest.csv").is_file():
        from host.framing import real_test_scenes

        first = face_sets[0]
        out[first + FRAMED] = (door_framed_split(out[first][0], real_test_scenes(scenes_root)),
                               f"{out[first][1]}, each face door-framed: 40-70% of the window in a scenes-negative"
                               " test photo (host.framing)")
    return out


FRAMED = " door-framed"


def no_face_set(splits: dict) -> str | None:
    """Name of the first out-of-domain set made only of no-face pictures (scenes-negative test): the
    one the no-face figures, the --max-no-face target and the long run with nobody there use."""
    for name, (split, _) in splits.items():
        labels = np.asarray(split.labels)
        if len(labels) and bool((labels == NONE).all()):
            return name
    return None


def require_no_face(splits: dict, max_no_face: float | None) -> None:
    if max_no_face is not None and no_face_set(splits) is None:
        from host.errors import UserError

        raise UserError(f"--max-no-face {max_no_face:g}: no no-face pictures to hold to it; keep scenes-negative"
                        " among the out-of-domain sets (the default, or --eval-data .../scenes-negative)")


def _has_both_face_classes(labels) -> bool:
    labels = np.asarray(labels)
    return bool((labels == NEGATIVE).any() and (labels == POSITIVE).any())


def measure(payload: bytes, dataset: data_mod.Dataset, eval_dirs=None, progress: bool = False,
            limit: int | None = None, splits: dict | None = None, degraded: dict | None = None,
            max_no_face: float | None = None) -> dict:
    """Score every out-of-domain set, calibrate the door threshold (with `max_no_face`, for that
    share of no-face pictures too), and report at it. `splits` (from eval_splits) and `degraded`
    (from degraded_splits) may be passed in when measuring many models on the same data
    (host.compare)."""
    splits = eval_splits(dataset, eval_dirs, limit) if splits is None else splits
    require_no_face(splits, max_no_face)
    sets = [score_split(payload, split, name, description, progress) for name, (split, description) in splits.items()]
    degraded = degraded_splits(dataset.test) if degraded is None else degraded
    degraded_scored = [score_split(payload, s, f"degraded:{n}", degrade.DEGRADATIONS[n].description)
                       for n, s in degraded.items()]
    combined = Scored("degraded test", np.concatenate([s.labels for s in degraded_scored]),
                      np.concatenate([s.outputs for s in degraded_scored]),
                      f"{dataset.root.name} test split under {len(degraded_scored)} degradations (host.make.degrade)")
    faces = [s for s in sets if _has_both_face_classes(s.labels) and not s.name.endswith(FRAMED)]
    calibration = faces[0] if faces else score_split(payload, dataset.test, "test", f"{dataset.root.name} test split")
    framed = next((s for s in sets if s.name == calibration.name + FRAMED), None)
    nobody_name = no_face_set(splits)
    nobody = next((s for s in sets if s.name == nobody_name), None)
    face_threshold = door_threshold(calibration, framed)
    threshold = face_threshold if max_no_face is None else door_threshold(calibration, framed, nobody, max_no_face)
    measures = report([*sets, combined], threshold)
    per_degradation = {s.name.split(":", 1)[1]: float((evaluate.predicted_labels(s.outputs) == s.labels).mean())
                       for s in degraded_scored}
    return {"threshold": threshold, "calibration": calibration.name, "calibration_description": calibration.description,
            "calibration_framed": framed.name if framed is not None else None,
            "face_threshold": face_threshold, "max_no_face": max_no_face,
            "no_face_set": nobody.name if nobody is not None else None,
            "sets": measures, "degraded_accuracy": per_degradation,
            "degraded_mean": float(np.mean(list(per_degradation.values()))) if per_degradation else None}


def missed_target(door: dict) -> list[tuple[str, float]]:
    """(set, unmasked admitted) of each calibration set whose unmasked faces the threshold could not
    hold to MAX_UNMASKED_ADMITTED (it is then the highest output level)."""
    out = []
    for name in (door["calibration"], door.get("calibration_framed")):
        unmasked = door["sets"].get(name or "", {}).get("unmasked_admitted")
        if unmasked is not None and unmasked > MAX_UNMASKED_ADMITTED + 1e-9:
            out.append((name, unmasked))
    return out


def missed_no_face(door: dict) -> float | None:
    """No-face admission at the threshold when `max_no_face` was asked for and even the highest
    output level admits more; else None."""
    target, name = door.get("max_no_face"), door.get("no_face_set")
    admitted = door["sets"].get(name or "", {}).get("no_face_admitted")
    return admitted if target is not None and admitted is not None and admitted > target + 1e-9 else None


def summary(door: dict) -> str:
    on = door["calibration"] + (f" and {door['calibration_framed']}" if door.get("calibration_framed") else "")
    lines = [table(door["sets"], door["threshold"]),
             f"threshold chosen on {on} for <= {MAX_UNMASKED_ADMITTED:.0%} unmasked admitted (each)"]
    if door.get("max_no_face") is not None:
        face_only = door["face_threshold"]
        lines.append(f"  and on {door['no_face_set']} for <= {door['max_no_face'] * 100:g}% no-face admitted: "
                     + (f"raised from {face_only:.4f}, the faces' own threshold" if door["threshold"] > face_only
                        else "the faces' threshold already meets it"))
    for name, unmasked in missed_target(door):
        lines.append(f"WARNING: no threshold holds {name} to {MAX_UNMASKED_ADMITTED:.0%} unmasked admitted:"
                     f" {unmasked:.2%} even at the highest output level; this model is not safe for a door")
    missed = missed_no_face(door)
    if missed is not None:
        lines.append(f"WARNING: no threshold holds {door['no_face_set']} to {door['max_no_face'] * 100:g}% no-face admitted:"
                     f" {missed:.2%} even at the highest output level")
    if door["degraded_mean"] is not None:
        lines.append("degraded accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in door["degraded_accuracy"].items())
                     + f"; mean {door['degraded_mean']:.4f}")
    return "\n".join(lines)


def card_fields(door: dict) -> dict:
    """The model card's door keys: `door_threshold`, `door_expected` (rates at it and the data they
    were measured on), and `out_of_domain` (every set measured)."""
    sets = door["sets"]
    at = sets.get(door["calibration"], {})
    no_face = sets.get(door.get("no_face_set") or "") or next((m for m in sets.values() if m["no_face_images"]), None)
    framed = sets.get(door.get("calibration_framed") or "", {})
    expected = {
        "measured_on": door["calibration_description"],
        "door_framed": {"unmasked_admitted": framed.get("unmasked_admitted"), "masked_admitted": framed.get("masked_admitted"),
                        "measured_on": framed.get("description")} if framed else None,
        "target_unmasked_admitted": MAX_UNMASKED_ADMITTED,
        "target_met": not missed_target(door),
        "target_no_face_admitted": door.get("max_no_face"),
        "no_face_target_met": None if door.get("max_no_face") is None else missed_no_face(door) is None,
        "threshold_for_faces_alone": round(door["face_threshold"], 8) if "face_threshold" in door else None,
        "unmasked_admitted": at.get("unmasked_admitted"),
        "masked_admitted": at.get("masked_admitted"),
        "images": {"without_mask": at.get("unmasked_images"), "with_mask": at.get("masked_images")},
        "no_face_admitted": no_face["no_face_admitted"] if no_face else None,
        "no_face_measured_on": no_face["description"] if no_face else None,
        "no_face_images": no_face["no_face_images"] if no_face else 0,
        "note": "per frame, int8 on TFLM; the threshold was chosen on this same set, so these rates are"
                " in-sample; the door's debounce (N frames in a row) lowers admissions further",
    }
    # 8 decimals hold every level k/256 exactly: 6 rounded 166/256 up to 0.648438, above the level,
    # so the board turned back frames scoring exactly it that the card counted as admitted
    return {"door_threshold": round(door["threshold"], 8), "door_expected": expected,
            "out_of_domain": {"sets": sets, "degraded_accuracy": door["degraded_accuracy"],
                              "degraded_mean": door["degraded_mean"]}}
