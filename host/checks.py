"""`python -m host.checks`, the documented command; the code lives in host/make/checks.py."""

from host.errors import run_cli
from host.make.checks import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
