"""The bundle and config.json exactly as `tools.deploy` would put them on the card.

Loading, checking and config rendering are tools.payload's (the deploy step's own code), so the
simulated board runs what a real deploy would install; only the copy onto a folder is ours.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from host.boards import load_board
from tools.payload import (
    FIRMWARE_DIR,
    Bundle,
    firmware_files,
    firmware_module,
    load_bundle,
    parse_overrides,
    render_config,
)

__all__ = ["FIRMWARE_DIR", "Bundle", "deploy", "firmware_module", "load", "parse_overrides", "render"]


def load(folder: Path | str, board: str = "openmv_h7") -> Bundle:
    return load_bundle(Path(folder), load_board(board))


def render(bundle: Bundle, board: str = "openmv_h7", overrides: dict | None = None) -> dict:
    return render_config(bundle, load_board(board), dict(overrides or {}))


def deploy(bundle: Bundle, config: dict, target: Path, firmware: bool = True) -> list[str]:
    """Copy model, labels, config.json (and the firmware files) where the board runs from."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in (bundle.model, bundle.labels):
        shutil.copyfile(src, target / src.name)
        copied.append(src.name)
    (target / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    copied.append("config.json")
    if firmware:
        for src in firmware_files():
            shutil.copyfile(src, target / src.name)
            copied.append(src.name)
    return copied
