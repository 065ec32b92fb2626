"""`python -m host.seeds`, the documented command; the code lives in host/make/seeds.py."""

from host.errors import run_cli
from host.make.seeds import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
