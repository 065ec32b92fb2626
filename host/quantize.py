"""`python -m host.quantize`, the documented command; the code lives in host/make/quantize.py."""

from host.errors import run_cli
from host.make.quantize import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
