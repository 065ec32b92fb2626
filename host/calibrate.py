"""`python -m host.calibrate`, the documented command; the code lives in host/make/calibrate.py."""

from host.errors import run_cli
from host.make.calibrate import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
