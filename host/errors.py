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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
