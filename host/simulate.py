"""`python -m host.simulate`, the documented command; the code lives in host/sim/cli.py."""

from host.errors import run_cli
from host.sim.cli import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
