"""`python -m host.report`, the documented command; the code lives in host/field/report/cli.py."""

from host.errors import run_cli
from host.field.report.cli import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
