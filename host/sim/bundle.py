"""The bundle and config.json exactly as `tools.deploy` would put them on the card.

Loading, checking, config rendering and the choice of .mpy or .py firmware are tools.payload's (the
deploy step's own code), so the simulated board runs what a real deploy would install; only the copy
onto a folder is ours.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from host.boards import load_board
from tools.payload import (
    FIRMWARE_DIR,
    Bundle,
    compiled_firmware,
    firmware_module,
    firmware_names,
    firmware_payload,
    load_bundle,
    parse_overrides,
    render_config,
)

__all__ = ["FIRMWARE_DIR", "Bundle", "deploy", "firmware_module", "load", "parse_overrides", "render"]


def load(folder: Path | str, board: str = "openmv_h7") -> Bundle:
    return load_bundle(Path(folder), load_board(board))


BOOT_FILE = FIRMWARE_DIR / "main.py"


def render(bundle: Bundle, board: str = "openmv_h7", overrides: dict | None = None) -> dict:
    return render_config(bundle, load_board(board), dict(overrides or {}))


def deploy(bundle: Bundle, config: dict, target: Path, firmware: bool = True, camera_mpy: int | None = None,
           firmware_format: str = "auto") -> list[str]:
    """Copy model, labels, config.json (and the firmware files: .mpy when a camera reporting
    `camera_mpy` imports them, by tools.deploy's rule, and main.py, the boot file) where the board runs from."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in (bundle.model, bundle.labels):
        shutil.copyfile(src, target / src.name)
        copied.append(src.name)
    (target / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    copied.append("config.json")
    if firmware:
        for name in firmware_names():  # a card used before keeps no module in the other form
            (target / name).unlink(missing_ok=True)
        compiled, _ = compiled_firmware(firmware_format, camera_mpy)
        with tempfile.TemporaryDirectory(prefix="tinymask-sim-deploy-") as staging:
            # OpenMV boots only a main.py: on this flat card (the layout before sets) the door's main stays
            # a source; tools.deploy's sets boot the loader as main.py, which imports the set's main.mpy
            for src in [p for p in firmware_payload(Path(staging), compiled) if p.stem != "main"] + [BOOT_FILE]:
                shutil.copyfile(src, target / src.name)
                copied.append(src.name)
    return copied
