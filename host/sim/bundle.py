"""The bundle and config.json exactly as `tools.deploy` would put them on the card.

Loading, checking and config rendering are tools.payload's (the deploy step's own code), so the
simulated board runs what a real deploy would install; only the copy onto a folder is ours.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import shutil
from pathlib import Path

from host.boards import load_board
from tools.payload import FIRMWARE_DIR, Bundle, firmware_files, load_bundle, parse_overrides, render_config

__all__ = ["FIRMWARE_DIR", "Bundle", "deploy", "firmware_module", "load", "parse_overrides", "render"]


def firmware_module(name: str, _loaded: dict | None = None):
    """Import a pure firmware module (tmconfig, door, tmlog, capture, infer) in CPython, with its
    firmware siblings, without putting firmware/ on sys.path or into sys.modules."""
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
