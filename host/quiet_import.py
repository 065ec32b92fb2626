"""Silence the lines TensorFlow's shared libraries print while they load.

`import tensorflow` loads two libraries whose static initialisers each log "oneDNN custom operations
are on" (and absl's "All log messages before absl::InitializeLog()") straight to file descriptor 2,
before TF_CPP_MIN_LOG_LEVEL is consulted, so our commands began with four lines of noise. The import
of the `tensorflow` package (directly or through keras) runs with descriptor 2 captured; known
start-up lines are dropped and anything else, a real error included, is written back to stderr.
TensorFlow is still imported only when a command needs it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile

NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "Could not find cuda drivers",
)


def is_noise(line: str) -> bool:
    return any(marker in line for marker in NOISE)


def without_noise(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loud = spec.loader.exec_module  # this spec's own loader instance: patching it touches nothing else
        spec.loader.exec_module = lambda module: _with_fd2_filtered(loud, module)
        return spec


def _with_fd2_filtered(function, *args):
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return function(*args)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = without_noise(captured.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def install() -> None:
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlow())
