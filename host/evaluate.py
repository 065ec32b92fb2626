"""`python -m host.evaluate`, the documented command; the code lives in host/make/evaluate.py."""

from host.errors import run_cli
from host.make.evaluate import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
