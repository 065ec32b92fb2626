"""User errors: one clear line, no traceback, non-zero exit."""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Something the user can fix: the message names the file or value and the fix."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a command's main; a UserError becomes 'error: ...' on stderr and exit code 2."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        report(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        report("error: interrupted")
        return 130


def report(line: str) -> None:
    """Print one error line at the start of a clean line: progress bars an error interrupted are
    closed first (a bar left open keeps the cursor at its end, and the error would follow it)."""
    close_progress_bars()
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)


def close_progress_bars() -> None:
    tqdm_module = sys.modules.get("tqdm")  # never import tqdm just to find that no bar exists
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.leave = False  # an interrupted bar is not a result: clear its line rather than keep it
        bar.close()


def output_folder(path, flag: str = "--out"):
    """A folder results will go to, checked before any work and without making it (a refused command leaves
    nothing behind): not a file, and its nearest existing parent a folder this user can write in (found
    in review: a build failed only after training, with a traceback)."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file, not a folder; name a folder for the results")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: cannot make the folder ({existing} is a file); name another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: cannot make the folder ({existing} is not writable); name one you can write")
    return path


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (frames, repeats, images): 0 or less is one clear line."""
    return _positive(text, int, "a whole number", "at least 1")


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (hours, seconds)."""
    return _positive(text, float, "a number", "a number above 0")


def _positive(text: str, kind, noun: str, rule: str):
    import argparse
    import math

    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: {rule}")
    return value


def run_script(main: Callable[..., int | None]) -> int:
    """A benchmark's entry point: run_cli's one-line errors, and a missing file or folder it was pointed at
    is one line naming it too (benchmarks read bundles and data the user names)."""
    import inspect

    call = main if inspect.signature(main).parameters else (lambda _argv: main())
    try:
        return run_cli(call)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        what = (exc.strerror or str(exc)).lower()
        report(f"error: {exc.filename}: {what}; check the path you gave" if exc.filename else f"error: {what}")
        return 2
