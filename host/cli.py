"""`tinymask <command>`: one entry point for every tinymask command.

Each command is the module behind `python -m host.<command>` or `python -m tools.<command>`, imported
only when it is run, so `tinymask --help` never loads TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

from host.errors import run_cli

# command: (module with main(argv), one line for the overview); in the order of the flow.
COMMANDS = {
    "build": ("host.make.build", "image folders to a checked int8 model bundle (runs/<name>/, --publish for models/)"),
    "calibrate": ("host.make.calibrate", "measure a bundle out of domain and store its door threshold in its card"),
    "evaluate": ("host.make.evaluate", "accuracy of a bundle's int8 model (and a Keras model) on a labelled folder"),
    "simulate": ("host.sim.cli", "run firmware/main.py on a simulated board over picture files"),
    "deploy": ("tools.deploy", "put a bundle, config.json and the firmware on the camera"),
    "pull": ("tools.pull", "bring SD logs and captured frames home from a camera or card"),
    "dataset": ("tools.dataset", "turn captured frames into a labelled folder (an on-device test set)"),
    "ingest": ("host.field.ingest", "load SD logs into a DuckDB database"),
    "report": ("host.field.report.cli", "an HTML report of what the doors saw"),
    "seeds": ("host.make.seeds", "one design over several seeds: each bundle's door figures and their mean (sd)"),
    "compare": ("host.make.compare", "compare model designs, pruning and robustness"),
    "train": ("host.make.train", "build stage: Keras float32 training alone"),
    "quantize": ("host.make.quantize", "build stage: full-int8 quantization alone"),
    "checks": ("host.make.checks", "build stage: board budget checks of a .tflite"),
}


def overview() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = [
        "usage: tinymask <command> [options]      (tinymask <command> --help for its options)",
        "",
        "A tiny int8 face-mask classifier for the OpenMV Cam H7: build, check, deploy, and read the logs.",
        "",
        "commands:",
        *(f"  {name:{width}}{summary}" for name, (_, summary) in COMMANDS.items()),
        "",
        "Every command is also `python -m host.<command>` (deploy, pull, dataset: `python -m tools.<command>`).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(COMMANDS)} (tinymask --help)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return run_cli(module.main, rest)


if __name__ == "__main__":
    raise SystemExit(main())
