"""`python -m host.build`, the documented command; the code lives in host/make/build.py."""

from host.errors import run_cli
from host.make.build import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
