"""`python -m host.ingest`, the documented command; the code lives in host/field/ingest.py."""

from host.errors import run_cli
from host.field.ingest import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
