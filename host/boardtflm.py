"""`python -m host.boardtflm setup|status`: the isolated environment with the board's TFLM
(the code lives in host/interp/env.py)."""

from host.errors import run_cli
from host.interp.env import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
