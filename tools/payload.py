"""What goes on the camera: a checked model bundle, the rendered config.json, the firmware files.

The config is rendered from firmware/tmconfig.py's SCHEMA (the same code the board validates it
with), in this order: schema defaults, board profile (board name, relay pin), model card (model and
labels file names, sha256, labels, positive label, output kind), then `--config` and `--set` overrides.
The card's "threshold" is its label/evaluation cut-off, not the door's confidence threshold: the door
threshold comes from the schema default, --config or --set only.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from host.boards import BoardProfile
from host.errors import UserError
from host.gate import check_gate_labels
from host.make.bundle import is_tflite
from tools.mpy import compile_module, why_not_loaded

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = ROOT / "firmware"
DEFAULT_BUNDLE = ROOT / "models" / "tinymask"
# keys the model card owns: overriding them would make the board load the model wrongly
CARD_KEYS = ("model_path", "labels_path", "model_sha256", "labels", "positive_label", "output_kind", "none_label")
TRUE_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def firmware_module(name: str, _loaded: dict | None = None):
    """Import a pure firmware module (tmconfig, storage, door, tmlog, capture, infer) in CPython, with
    its firmware siblings, without putting firmware/ on sys.path or into sys.modules (the firmware
    folder is not a package)."""
    loaded = {} if _loaded is None else _loaded
    if name in loaded:
        return loaded[name]

    def _import(target, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (FIRMWARE_DIR / f"{target}.py").is_file():
            return firmware_module(target, loaded)
        return builtins.__import__(target, globals, locals, fromlist, level)

    spec = importlib.util.spec_from_file_location(f"tinymask_firmware_{name}", FIRMWARE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    module.__builtins__ = {**vars(builtins), "__import__": _import}
    loaded[name] = module
    spec.loader.exec_module(module)
    return module


def tmconfig():
    """firmware/tmconfig.py: the config schema and validation the board uses."""
    return firmware_module("tmconfig")


def sha256_file(path: Path, limit: int | None = None) -> str:
    """sha256 hex of the file, or of its first `limit` bytes."""
    digest = hashlib.sha256()
    left = Path(path).stat().st_size if limit is None else limit
    with open(path, "rb") as f:
        while left > 0:
            block = f.read(min(left, 1 << 16))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    folder: Path
    card: dict
    model: Path
    labels: Path


def load_bundle(folder: Path, board: BoardProfile) -> Bundle:
    """Read and check a bundle: card present, files present, sha256 matches, budgets respected."""
    folder = Path(folder)
    card_path = folder / "model_card.json"
    if not folder.is_dir():
        raise UserError(f"no bundle at {folder}: build one with `python -m host.build` or pass --bundle DIR")
    if not card_path.is_file():
        raise UserError(f"{card_path}: missing model card; rebuild the bundle with `python -m host.build`")
    try:
        card = json.loads(card_path.read_text())
    except ValueError as exc:
        raise UserError(f"{card_path}: not valid JSON ({exc}); rebuild the bundle") from None
    if not isinstance(card, dict):
        raise UserError(f"{card_path}: not a JSON object; rebuild the bundle with `python -m host.build`")
    for key in ("model_file", "labels_file", "sha256", "labels"):
        if key not in card:
            raise UserError(f"{card_path}: no {key!r} field; rebuild the bundle with `python -m host.build`")
    check_card_fields(card, card_path)
    model = folder / plain_file_name(card_path, "model_file", card["model_file"], ".tflite")
    labels = folder / plain_file_name(card_path, "labels_file", card["labels_file"], ".txt")
    for path in (model, labels):
        if not path.is_file():
            raise UserError(f"{path}: missing from the bundle; rebuild it with `python -m host.build`")
    actual = sha256_file(model)
    if actual != card["sha256"]:
        raise UserError(f"{model}: sha256 {actual[:12]}... does not match the model card ({str(card['sha256'])[:12]}...); "
                        f"the file was changed or copied badly: rebuild the bundle")
    if not is_tflite(model.read_bytes()):
        raise UserError(f"{model}: not a .tflite model (no TFL3 identifier); rebuild the bundle with `python -m host.build`")
    try:
        listed = [line.strip() for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise UserError(f"{labels}: not UTF-8 text; rebuild the bundle with `python -m host.build`") from None
    if listed != list(card["labels"]):
        raise UserError(f"{labels}: labels {listed} differ from the model card's {card['labels']}; rebuild the bundle")
    size = model.stat().st_size
    if size > board.model_budget_bytes:
        raise UserError(f"{model}: {size} bytes is over the {board.name} model budget of {board.model_budget_bytes} "
                        f"bytes (boards/{board.name}.json); build a smaller model")
    arena = int(card.get("arena_bytes") or 0)
    if arena > board.arena_budget_bytes:
        raise UserError(f"{card_path}: tensor arena of {arena} bytes is over the {board.name} budget of "
                        f"{board.arena_budget_bytes} bytes (boards/{board.name}.json); build a smaller model")
    card_board = card.get("board")
    if card_board and card_board != board.name:
        print(f"note: the bundle was built for {card_board}; checked against {board.name}'s budgets")
    return Bundle(folder, card, model, labels)


def check_card_fields(card: dict, card_path: Path) -> None:
    """The card fields deploy reads, each of the type host.build writes, or one line naming the field."""
    def refuse(key, what):
        raise UserError(f"{card_path}: {key} {card.get(key)!r} is not {what}; rebuild the bundle with `python -m "
                        "host.build` (or re-measure it: tinymask calibrate --bundle DIR --write)")

    labels = card["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        refuse("labels", "a list of two or more class names")
    if not isinstance(card["sha256"], str):
        refuse("sha256", "a hex digest")
    threshold = card.get("door_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0.0 <= threshold <= 1.0):
        refuse("door_threshold", "a probability from 0 to 1")
    if card.get("door_expected") is not None and not isinstance(card["door_expected"], dict):
        refuse("door_expected", "an object of rates")
    for key in ("arena_bytes", "macs", "model_bytes"):
        value = card.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 40):
            refuse(key, "a count")
    board = card.get("board")
    if board is not None and not (isinstance(board, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", board)):
        refuse("board", "a board profile name (boards/<name>.json)")
    for key in ("training", "data", "metrics"):
        if card.get(key) is not None and not isinstance(card[key], dict):
            refuse(key, "an object")
    sets = (card.get("data") or {}).get("sets")
    # any folder name loads ('My Photos', '' from --data .); calibrate.data_dirs_for keeps the path rule
    if sets is not None and not (isinstance(sets, list) and all(isinstance(x, str) for x in sets)):
        raise UserError(f"{card_path}: data.sets {sets!r} is not a list of dataset folder names; rebuild the bundle")
    expected = card.get("door_expected") or {}
    for key in ("target_unmasked_admitted", "target_no_face_admitted", "masked_admitted", "no_face_admitted"):
        value = expected.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise UserError(f"{card_path}: door_expected.{key} {value!r} is not a share from 0 to 1; re-measure the"
                            " bundle: tinymask calibrate --bundle DIR --write")


RESERVED_NAMES = ("boot.py", "main.py", "config.json", "model_card.json")  # the camera runs or reads these


def plain_file_name(card_path: Path, key: str, name, suffix: str) -> str:
    """A bundle file named by the model card: a plain file name in the bundle folder, with the expected
    suffix, never one the camera runs at start-up (it is copied to the camera under this name)."""
    if (not isinstance(name, str) or not name or "/" in name or "\\" in name or ".." in name
            or name.startswith(".") or not name.lower().endswith(suffix) or len(name) <= len(suffix)
            or name.lower() in RESERVED_NAMES or any(ord(ch) < 32 for ch in name)):
        raise UserError(f"{card_path}: {key} {name!r} is not a plain {suffix} file name in the bundle folder "
                        f"(no '/', '\\', '..', never boot.py or main.py); rebuild the bundle with "
                        f"`python -m host.build` or set {key} to a name like 'tinymask{suffix}'")
    return name


def parse_overrides(pairs: list[str]) -> dict:
    """`key=value` strings to typed values, by the config SCHEMA. One clear error per bad pair."""
    schema = tmconfig().SCHEMA
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep:
            raise UserError(f"--set {pair!r}: expected key=value, for example --set threshold=0.7")
        if key not in schema:
            raise UserError(f"--set {key}: unknown config key; valid keys: {', '.join(sorted(schema))}")
        if key in CARD_KEYS:
            raise UserError(f"--set {key}: comes from the model card and cannot be overridden; rebuild the bundle instead")
        kind = schema[key][1]
        try:
            out[key] = _parse_value(kind, text.strip())
        except ValueError:
            raise UserError(f"--set {key}={text}: expected {_kind_name(kind)}") from None
    _, errors = tmconfig().validate(out)  # the firmware's own rules, named as what the user typed
    if errors:
        raise UserError(f"--set {errors[0]}")
    return out


def load_site_config(path: Path) -> dict:
    """A JSON object of config values kept with the installation (applied before --set)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except OSError:
        raise UserError(f"--config {path}: cannot read the file") from None
    except ValueError as exc:
        raise UserError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"--config {path}: expected a JSON object of config keys")
    schema = tmconfig().SCHEMA
    for key in raw:
        if key not in schema:
            raise UserError(f"--config {path}: unknown config key {key!r}; valid keys: {', '.join(sorted(schema))}")
        if key in CARD_KEYS:
            raise UserError(f"--config {path}: {key} comes from the model card and cannot be overridden")
    _, errors = tmconfig().validate(raw)
    if errors:
        raise UserError(f"--config {path}: {errors[0]}")
    return raw


def _parse_value(kind, text: str):
    if kind is bool:
        if text.lower() not in TRUE_WORDS:
            raise ValueError(text)
        return TRUE_WORDS[text.lower()]
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    if kind is list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise ValueError(text)
        return items
    return text


def _kind_name(kind) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", list: "a comma-separated list"}.get(kind, "text")


def door_threshold_line(card: dict, config: dict, overrides: dict) -> str:
    """One line: the door threshold the camera will use, where it comes from, and what the card
    expects of it per frame (the rates it was calibrated at)."""
    threshold = config["threshold"]
    calibrated = card.get("door_threshold")
    if "threshold" in overrides:
        return (f"door threshold {threshold:g}, set for this installation (the card's calibrated one is"
                f" {calibrated:g})" if isinstance(calibrated, (int, float)) else
                f"door threshold {threshold:g}, set for this installation")
    if not isinstance(calibrated, (int, float)):
        return (f"door threshold {threshold:g}, the firmware's default: this card has no calibrated one"
                " (tinymask calibrate --bundle DIR --write gives it one)")
    expected = card.get("door_expected") or {}
    rule = f"<= {expected.get('target_unmasked_admitted', 0.01):.0%} unmasked admitted"
    if expected.get("target_no_face_admitted") is not None:
        rule += f" and <= {expected['target_no_face_admitted'] * 100:g}% no-face"
    rates = []
    framed = (expected.get("door_framed") or {}).get("masked_admitted")
    if expected.get("masked_admitted") is not None:
        rates.append(f"masked faces admitted {expected['masked_admitted']:.1%} close up"
                     + (f" / {framed:.1%} door-framed" if framed is not None else ""))
    if expected.get("no_face_admitted") is not None:
        rates.append(f"no-face pictures {expected['no_face_admitted']:.1%}")
    return (f"door threshold {threshold:g} from the model card ({rule})"
            + (f"; per frame on its out-of-domain sets: {', '.join(rates)}" if rates else ""))


def render_config(bundle: Bundle, board: BoardProfile, overrides: dict) -> dict:
    """The config.json for this bundle on this board; validated with the firmware's own rules. The
    door threshold is the card's `door_threshold` (chosen for <= 1% unmasked admitted on faces from
    sources the model did not train on) when it has one, else the schema's default; `overrides`
    (--config, --set) win over both."""
    module = tmconfig()
    card = bundle.card
    raw = module.defaults()
    raw["board"] = board.name
    pins = board.data.get("pins", {})
    if pins.get("relay"):
        raw["relay_pin"] = pins["relay"]
    raw.update({
        "model_path": bundle.model.name,
        "labels_path": bundle.labels.name,
        "model_sha256": card["sha256"],
        "labels": list(card["labels"]),
        "positive_label": card.get("positive_label", raw["positive_label"]),
        "output_kind": card.get("output_kind", raw["output_kind"]),
        "none_label": card.get("none_label", raw["none_label"]),
    })
    if isinstance(card.get("door_threshold"), (int, float)):  # calibrated out of domain (host.make.ood)
        raw["threshold"] = float(card["door_threshold"])
    check_gate_labels(raw["labels"], raw["positive_label"], raw["none_label"], raw["output_kind"], str(bundle.folder))
    _, errors = module.validate(raw)  # what the card gives, before any override: the card is the file to fix
    if errors:
        raise UserError(f"{bundle.folder / 'model_card.json'}: {errors[0]}; rebuild the bundle with `python -m host.build`")
    raw.update(overrides)
    config, errors = module.validate(raw)
    if errors:
        raise UserError(f"config.json: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    allowed = pins.get("allowed")
    if allowed and config["relay_pin"] not in allowed:
        raise UserError(f"--set relay_pin={config['relay_pin']}: {board.name} has pins {', '.join(allowed)}")
    return config


def check_camera_window(board: BoardProfile, side: int) -> None:
    """The STM32 boards cannot capture every centred window (every snapshot a RuntimeError; the
    firmware then falls back to the default window with a config_error). tools.deploy refuses it up
    front, with the sides near it that work; the simulator renders such a config and shows what the
    board does with it."""
    from host.sim.camera import FRAMESIZES, QVGA, centred_window_fits

    def fits(w: int) -> bool:  # firmware/camera.py captures QVGA and centres the window on it
        return centred_window_fits(FRAMESIZES[QVGA][0], w)

    if board.data.get("camera_interface") != "stm32_dcmi" or fits(side):
        return
    below = next((w for w in range(side - 1, 31, -1) if fits(w)), None)
    above = next((w for w in range(side + 1, 241) if fits(w)), None)
    choices = " or ".join(str(w) for w in (below, above) if w is not None)
    raise UserError(f"camera_window {side}: {board.name}'s camera (STM32 DCMI) cannot capture a {side}x{side}"
                    f" window (a side of 2 or 3 mod 4 makes every snapshot fail with \"Frame size is not"
                    f" supported\"); set camera_window to {choices}")


LOADER = "tmboot.py"  # installed as the card's main.py: it starts the newest complete set (tmset/<n>/)


def firmware_files() -> list[Path]:
    """firmware/*.py of a set (the set loader is not one of them), main.py last."""
    files = sorted((p for p in FIRMWARE_DIR.glob("*.py") if p.name != LOADER),
                   key=lambda p: (p.name == "main.py", p.name))
    if not files:
        raise UserError(f"{FIRMWARE_DIR}: no firmware files found")
    return files


FIRMWARE_FORMATS = ("auto", "mpy", "py")


def compiled_firmware(choice: str, camera_mpy: int | None) -> tuple[bool, str | None]:
    """(ship the firmware as .mpy, a note for the user) for `--firmware-format` `choice` on a camera
    whose firmware reports `camera_mpy` (sys.implementation._mpy). auto: .mpy when the camera
    imports them, else the sources; mpy: .mpy or one clear error; py: the sources."""
    if choice == "py":
        return False, None
    # a camera that imports no .mpy at all gets the sources without running mpy-cross
    reason = why_not_loaded(None, b"") if camera_mpy is None else why_not_loaded(camera_mpy, compile_module(firmware_files()[-1]))
    if reason is None:
        return True, None
    if choice == "mpy":
        raise UserError(f"--firmware-format mpy: the camera cannot import the compiled firmware ({reason}); "
                        f"deploy the sources with --firmware-format py")
    return False, f"the camera cannot import the compiled firmware ({reason}): the firmware goes as .py sources"


def firmware_payload(staging: Path, compiled: bool) -> list[Path]:
    """The firmware files of a set: firmware/*.py, or each compiled by mpy-cross to
    staging/firmware/<name>.mpy (the set loader imports main.mpy as it would main.py); main last."""
    sources = firmware_files()
    if not compiled:
        return sources
    folder = Path(staging) / "firmware"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sources:
        path = folder / f"{source.stem}.mpy"
        path.write_bytes(compile_module(source))
        paths.append(path)
    return paths


def firmware_names() -> list[str]:
    """Every name a firmware module can have on the camera, as source or compiled."""
    return sorted(f"{p.stem}{suffix}" for p in firmware_files() for suffix in (".py", ".mpy"))
