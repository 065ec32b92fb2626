# config.json schema, defaults and validation (contract 2).
# Pure logic: runs under MicroPython on the board and under CPython on the host
# (tools.deploy renders config.json with it), so no typing, no CPython-only modules.

# name: (default, type, check) ; check is None, a tuple of allowed values, or (min, max)
SCHEMA = {
    "model_path": ("tinymask.tflite", str, None),
    "labels_path": ("tinymask.txt", str, None),
    "model_sha256": ("", str, None),
    "model_load_to_fb": (False, bool, None),
    "output_kind": ("sigmoid", str, ("sigmoid", "softmax")),
    "labels": (["without_mask", "with_mask"], list, None),
    "positive_label": ("with_mask", str, None),
    # the label of "nobody there": a model class of that name, and every frame the presence gate
    # stops, are logged with it and never count toward opening the door (docs/presence.md)
    "none_label": ("none", str, None),
    "presence_gate": (True, bool, None),
    "presence_grid": (3, int, (1, 8)),
    "presence_block": (24, int, (4, 240)),
    "presence_dark_l": (12, int, (0, 100)),
    "presence_flat_l": (4, int, (0, 100)),
    "presence_plain_l": (6, int, (0, 100)),
    # a window with no block changed by more than presence_change_l L* for presence_still_ms can
    # neither open the door nor hold it open (0: off; docs/presence.md)
    "presence_still_ms": (10000, int, (0, 3600000)),
    "presence_change_l": (4, int, (1, 100)),
    "threshold": (0.8, float, (0.0, 1.0)),
    "debounce_frames": (5, int, (1, 1000)),
    "open_ms": (3000, int, (100, 600000)),
    "relay_pin": ("P0", str, None),
    "relay_active_high": (True, bool, None),
    "use_leds": (True, bool, None),
    "log_enabled": (True, bool, None),
    "require_log": (True, bool, None),
    "log_dir": ("logs", str, None),
    "log_flush_records": (30, int, (1, 100000)),
    "log_flush_ms": (1000, int, (0, 3600000)),
    "log_max_bytes": (1048576, int, (4096, 1073741824)),
    "capture_mode": ("off", str, ("off", "every_n", "low_confidence")),
    "capture_every_n": (30, int, (1, 1000000)),
    "capture_low_confidence": (0.65, float, (0.5, 1.0)),
    "capture_dir": ("captures", str, None),
    "capture_quality": (90, int, (10, 100)),
    "camera_window": (200, int, (32, 240)),
    "camera_skip_ms": (2000, int, (0, 10000)),
    "camera_fixed_gain": (False, bool, None),
    "camera_fixed_exposure": (False, bool, None),
    "camera_fixed_whitebal": (False, bool, None),
    "camera_gain_db": (-1.0, float, (-1.0, 40.0)),
    "camera_exposure_us": (-1, int, (-1, 1000000)),
    "wdt_enabled": (True, bool, None),
    "wdt_timeout_ms": (5000, int, (500, 32000)),
    "recover_ms": (2000, int, (100, 600000)),
    "error_log_ms": (10000, int, (0, 3600000)),
    "report_ms": (5000, int, (0, 3600000)),
    "device_id": ("", str, None),
    "board": ("openmv_h7", str, None),
    "firmware_version": ("0.1.0", str, None),
}


_INF = float("inf")
STILL_MS_MIN = 1000
TEXT_MAX = 64  # any text setting: the log header carries several, and it must fit the log's buffer
PATH_MAX = 96  # a file or folder setting: host.build names a bundle with up to 64 characters, plus ".tflite"
LABELS_MAX = 16
# files and folders on the camera, relative to where main.py runs or to the card; a capture path
# is also a field of the log's comma-separated records
PATH_KEYS = ("model_path", "labels_path", "log_dir", "capture_dir")


def defaults():
    out = {}
    for name in SCHEMA:
        value = SCHEMA[name][0]
        out[name] = list(value) if isinstance(value, list) else value
    return out


def _coerce(name, value):
    default, kind, check = SCHEMA[name]
    if kind is bool:
        if value is True or value is False:
            return value
        raise ValueError(name + ": expected true or false")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(name + ": expected a number")
        value = float(value)
        if value != value or value in (_INF, -_INF):  # NaN/infinity: json.dumps writes them, MicroPython cannot read them back
            raise ValueError(name + ": expected a finite number")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(name + ": expected an integer")
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(name + ": expected a string")
        longest = PATH_MAX if name in PATH_KEYS else TEXT_MAX
        if len(value) > longest:
            raise ValueError(name + ": at most " + str(longest) + " characters")
    elif kind is list:
        if not isinstance(value, list) or not value:
            raise ValueError(name + ": expected a non-empty list")
        if len(value) > LABELS_MAX:
            raise ValueError(name + ": at most " + str(LABELS_MAX) + " labels")
        for item in value:
            if not isinstance(item, str):
                raise ValueError(name + ": expected a list of strings")
    if isinstance(check, tuple) and check:
        if kind is str:
            if value not in check:
                raise ValueError(name + ": must be one of " + ", ".join(check))
        elif value < check[0] or value > check[1]:
            raise ValueError(name + ": must be between " + str(check[0]) + " and " + str(check[1]))
    return value


def validate(raw):
    """Return (config, errors): config has every key (bad or missing values take their default),
    errors is a list of one-line messages. Never raises on bad content."""
    config = defaults()
    errors = []
    if not isinstance(raw, dict):
        return config, ["config: expected a JSON object"]
    for name in raw:
        if name not in SCHEMA:
            # repr: a key with a newline or a colon in it still gives one line that starts with the key
            errors.append((name if _safe_name(name) else repr(name)) + ": unknown key")
            continue
        try:
            config[name] = _coerce(name, raw[name])
        except ValueError as exc:
            errors.append(str(exc))
    for label in config["labels"]:
        if not _safe_name(label):
            errors.append("labels: " + repr(label) + " must be letters, digits, '_' or '-' (it names a folder)")
            config["labels"] = defaults()["labels"]
            break
    if config["output_kind"] == "sigmoid" and len(config["labels"]) != 2:
        errors.append("labels: a sigmoid model needs exactly 2 labels")
        config["labels"] = defaults()["labels"]
    if config["positive_label"] not in config["labels"]:
        errors.append("positive_label: not in labels")
        config["positive_label"] = config["labels"][-1]
    for name in PATH_KEYS:
        value = config[name]
        if value.endswith("/") and _safe_path(value[:-1]):
            config[name] = value[:-1]  # "logs/" is the folder logs
        elif not _safe_path(value):
            errors.append(name + ": " + repr(config[name]) + " must be a relative path of names made of letters,"
                          + " digits, '_', '-' or '.' (no '..', no leading '/')")
            config[name] = defaults()[name]
    if 0 < config["presence_still_ms"] < STILL_MS_MIN:
        errors.append("presence_still_ms: 0 (off) or at least " + str(STILL_MS_MIN)
                      + " (shorter, a masked person standing still might never open the door)")
        config["presence_still_ms"] = defaults()["presence_still_ms"]
    # the same rules as the host's deploy check (host.gate.check_gate_labels): with a sigmoid model
    # a none_label that names a class would log its faces as nobody there, and an unmasked face
    # would then no longer close an open door
    none = config["none_label"]
    sigmoid = config["output_kind"] == "sigmoid"
    if not _safe_name(none) or none == config["positive_label"] or (sigmoid and none in config["labels"]):
        errors.append("none_label: must be a plain name other than positive_label"
                      + (" and not a label of a sigmoid model" if sigmoid else ""))
        config["none_label"] = _fallback_none(config["labels"], config["positive_label"], sigmoid)
    return config, errors


def _fallback_none(labels, positive, sigmoid):
    for name in ("none", "nobody", "no_face"):
        if name != positive and not (sigmoid and name in labels):
            return name
    return "none_" + str(len(labels))


def _safe_path(text):
    if not text or len(text) > PATH_MAX:
        return False
    for part in text.split("/"):
        if part in ("", ".", "..") or not _plain(part, "_-."):
            return False
    return True


def _safe_name(text):
    return bool(text) and len(text) <= 40 and _plain(text, "_-")


def _plain(text, extra):
    """Only ASCII letters, digits and the characters in `extra`."""
    for ch in text:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in extra):
            return False
    return True


def load(path):
    """Read and validate a config file; a missing or unparsable file gives defaults and an error."""
    try:
        import json
    except ImportError:  # very old MicroPython builds
        import ujson as json
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        return defaults(), [path + ": missing, using defaults"]
    except ValueError:
        return defaults(), [path + ": not valid JSON, using defaults"]
    return validate(raw)
