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
SCALE_MS_SIZE = 32  # a profile's scale_ms is the window drawn into 32x32


def scale_factor(input_size: int) -> float:
    """How much longer than at 32x32 the board's scaling takes for a size x size input: (size/32)^2,
    its output pixels (exactly 1 at 32, so every 32x32 figure stays what it was)."""
    return (input_size / SCALE_MS_SIZE) ** 2


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

    def scale_ms(self, input_size: int = SCALE_MS_SIZE) -> float:
        """Estimated time to draw the camera window into a size x size input: the profile's scale_ms is
        the cost at 32x32, and the bilinear scaling's work grows with the output pixels, (size/32)^2
        (an estimate, UNVERIFIED on hardware like scale_ms itself)."""
        return float(self.data["scale_ms"]) * scale_factor(input_size)

    def frame_ms(self, macs: int, input_size: int = SCALE_MS_SIZE) -> float:
        """Estimated whole-loop frame time: camera + scaling (to the model's input_size) + inference + logging."""
        d = self.data
        return d["camera_frame_ms"] + self.scale_ms(input_size) + self.inference_ms(macs) + d["log_ms"]


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
