"""`python -m host.compare`, the documented command; the code lives in host/make/compare.py."""

from host.errors import run_cli
from host.make.compare import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
