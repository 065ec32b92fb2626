"""The isolated environment that holds the board's TFLM (`python -m host.boardtflm setup`).

OpenMV firmware 4.5.6 to 4.8.1 links tflite-micro builds of July 2024 (docs/platform.md section
11; openmv/libtflm b42a9d8 and 4da5984). PyPI has Python wheels of exactly those commits, but they
need numpy < 2 and CPython 3.10 or 3.11, so they live in their own venv (`.board-tflm/`) and run
in a child process (`host/interp/worker.py`). One venv holds numpy and flatbuffers; each wheel is
installed into its own folder, put on the worker's sys.path, because both are `tflite_micro`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from host.errors import UserError

REPO = Path(__file__).resolve().parents[2]
ENV_DIR = Path(os.environ.get("TINYMASK_BOARD_TFLM", REPO / ".board-tflm"))
SETUP_COMMAND = "python -m host.boardtflm setup"

# tflite-micro commit -> PyPI wheel built from it (the wheel's METADATA names the commit).
WHEELS = {
    "7a02496": "tflite-micro==0.dev20240716175218",
    "a57349f": "tflite-micro==0.dev20240725190708",
}
BASE_PACKAGES = ["numpy<2", "flatbuffers"]
PYTHONS = ("python3.11", "python3.10")


def python_path() -> Path:
    return ENV_DIR / "venv" / "bin" / "python"


def wheel_dir(commit: str) -> Path:
    return ENV_DIR / f"tflm-{commit}"


def stamp_path() -> Path:
    return ENV_DIR / "ready.json"


def own_entry(name: str) -> bool:
    """A name `setup` puts in its folder (venv/, tflm-<commit>/, ready.json)."""
    return name in ("venv", "ready.json") or name.startswith("tflm-")


def find_base_python() -> str | None:
    """A CPython 3.11 or 3.10 on PATH (the wheels exist for these only), or None."""
    for name in PYTHONS:
        found = shutil.which(name)
        if found:
            return found
    return None


def is_ready() -> bool:
    try:
        stamp = json.loads(stamp_path().read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("wheels") == WHEELS and python_path().is_file()


class MissingEnvironment(UserError):
    pass


def require() -> Path:
    """The isolated python, or one line saying how to create it."""
    if not is_ready():
        raise MissingEnvironment(f"the board's TFLM environment {ENV_DIR} is missing or out of date; create it with: {SETUP_COMMAND}")
    return python_path()


def setup(force: bool = False, quiet: bool = False) -> float:
    """Create (or keep, when ready) `.board-tflm/`; returns the seconds it took."""
    start = time.time()
    if is_ready() and not force:
        return 0.0
    base = find_base_python()
    if base is None:
        raise UserError("no python3.11 or python3.10 on PATH: the board's TFLM wheels exist only for CPython 3.10/3.11;"
                        " install one (apt-get install python3.11) or the build falls back to the static check")
    if ENV_DIR.exists() and not ENV_DIR.is_dir():
        raise UserError(f"{ENV_DIR} (TINYMASK_BOARD_TFLM) is a file; name a folder for the board's TFLM environment")
    if ENV_DIR.is_dir() and any(ENV_DIR.iterdir()):
        # only ever remove a folder this command made: it holds nothing but venv/, wheels/ and the stamp
        if not all(own_entry(p.name) for p in ENV_DIR.iterdir()):
            raise UserError(f"{ENV_DIR} (TINYMASK_BOARD_TFLM) holds files this command did not make; name an empty or"
                            " new folder for the board's TFLM environment")
        shutil.rmtree(ENV_DIR)
    ENV_DIR.mkdir(parents=True, exist_ok=True)
    out = subprocess.DEVNULL if quiet else None
    pip_flags = ["--quiet", "--disable-pip-version-check", "--no-input"]

    def run(*cmd):
        result = subprocess.run(list(cmd), stdout=out, stderr=subprocess.PIPE, text=True, check=False)
        if result.returncode != 0:
            raise UserError(f"{' '.join(cmd[:4])} ... failed: {result.stderr.strip().splitlines()[-1:]}; retry {SETUP_COMMAND}")

    run(base, "-m", "venv", str(ENV_DIR / "venv"))
    python = str(python_path())
    run(python, "-m", "pip", "install", *pip_flags, *BASE_PACKAGES)
    for commit, requirement in WHEELS.items():
        # --no-deps: the wheel lists tensorflow, which its interpreter does not use (worker.py).
        run(python, "-m", "pip", "install", *pip_flags, "--no-deps", "--target", str(wheel_dir(commit)), requirement)
    stamp_path().write_text(json.dumps({"wheels": WHEELS, "python": base, "created": time.time()}, indent=1) + "\n")
    return time.time() - start


def describe() -> str:
    if is_ready():
        return f"{ENV_DIR} ready ({', '.join(f'{c}: {w}' for c, w in WHEELS.items())})"
    if find_base_python() is None:
        return f"{ENV_DIR} cannot be created: no python3.11 or python3.10 on PATH (static check only)"
    return f"{ENV_DIR} missing: {SETUP_COMMAND}"


def _main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m host.boardtflm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["setup", "status"], help="setup: create .board-tflm/ (cached); status: say if it is there")
    parser.add_argument("--force", action="store_true", help="recreate even when ready")
    args = parser.parse_args(argv)
    if args.action == "status":
        print(describe())
        return 0 if is_ready() else 1
    if find_base_python() is None and not args.force:
        print(describe())
        return 0  # no CPython 3.10/3.11: the build says it used the static check only
    seconds = setup(force=args.force)
    print(describe() + (f"; created in {seconds:.0f} s" if seconds else "; cached"))
    return 0


main = _main
