"""Board profiles (boards/<name>.json): budgets, firmware API family, storage, speed estimate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from host.errors import UserError

BOARDS_DIR = Path(__file__).resolve().parents[1] / "boards"
REQUIRED_KEYS = {
    "clock_hz", "model_budget_bytes", "arena_budget_bytes", "supported_ops", "macs_per_cycle",
    "camera_frame_ms", "scale_ms", "log_ms", "firmware", "storage",
}


@dataclass(frozen=True)
class BoardProfile:
    name: str
    data: dict

    def __getitem__(self, key):
        return self.data[key]

    @property
    def model_budget_bytes(self) -> int:
        return int(self.data["model_budget_bytes"])

    @property
    def arena_budget_bytes(self) -> int:
        return int(self.data["arena_budget_bytes"])

    @property
    def supported_ops(self) -> set[str]:
        return set(self.data["supported_ops"])

    def inference_ms(self, macs: int) -> float:
        """Estimated on-board inference time from the MAC count and the profile's MAC/cycle figure."""
        cycles = macs / float(self.data["macs_per_cycle"])
        return 1000.0 * cycles / float(self.data["clock_hz"])

    def frame_ms(self, macs: int) -> float:
        """Estimated whole-loop frame time: camera + scaling + inference + logging."""
        d = self.data
        return d["camera_frame_ms"] + d["scale_ms"] + self.inference_ms(macs) + d["log_ms"]


def available_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def load_board(name: str) -> BoardProfile:
    """A profile by name (boards/<name>.json) or by the path of a profile JSON file of your own."""
    path = Path(name) if name.endswith(".json") else BOARDS_DIR / f"{name}.json"
    if not path.is_file():
        raise UserError(f"unknown board {name!r}; choose one of: {', '.join(available_boards())} or give a profile .json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); fix the board profile") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a board profile is a JSON object; copy boards/openmv_h7.json and edit it")
    missing = sorted(REQUIRED_KEYS - set(data))
    if missing:
        raise UserError(f"{path}: board profile lacks {', '.join(missing)}; copy boards/openmv_h7.json and edit it")
    check_profile(path, data)
    return BoardProfile(data.get("name", path.stem), data)


def check_profile(path: Path, data: dict) -> None:
    """The fields the checks compute with: positive numbers, a list of operator names, objects."""
    for key in ("clock_hz", "model_budget_bytes", "arena_budget_bytes", "macs_per_cycle"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise UserError(f"{path}: {key} {value!r} must be a number above 0; see boards/openmv_h7.json")
    for key in ("camera_frame_ms", "scale_ms", "log_ms"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise UserError(f"{path}: {key} {value!r} must be a number of ms, 0 or more; see boards/openmv_h7.json")
    ops = data["supported_ops"]
    if not (isinstance(ops, list) and ops and all(isinstance(op, str) for op in ops)):
        raise UserError(f"{path}: supported_ops must be a list of operator names such as \"CONV_2D\"")
    for key in ("firmware", "storage"):
        if not isinstance(data[key], dict):
            raise UserError(f"{path}: {key} must be an object; see boards/openmv_h7.json")
