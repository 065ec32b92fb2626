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
