"""`python -m host.train`, the documented command; the code lives in host/make/train.py."""

from host.errors import run_cli
from host.make.train import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
