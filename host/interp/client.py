"""A persistent child process running one board TFLM wheel (host/interp/worker.py).

One worker per tflite-micro commit per process, started on first use and kept: loading a model and
invoking it then costs a pipe round trip, so the simulator and the build stay fast.
"""

from __future__ import annotations

import atexit
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.interp import env

WORKER = Path(__file__).with_name("worker.py")


class TFLMError(RuntimeError):
    """The board's TFLM refused the model (allocate/prepare) or failed to invoke it."""

    def __init__(self, error: str, log: str):
        super().__init__(error + (f" ({log.strip().splitlines()[0]})" if log.strip() else ""))
        self.error = error
        self.log = log


class Worker:
    def __init__(self, commit: str):
        python = env.require()
        self.commit = commit
        self.process = subprocess.Popen(
            [str(python), "-u", str(WORKER), str(env.wheel_dir(commit))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def request(self, header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
        header = dict(header, nbytes=len(payload))
        try:
            self.process.stdin.write(json.dumps(header).encode() + b"\n" + payload)
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            self.process.wait(timeout=5)
            err = self.process.stderr.read().decode(errors="replace").strip()
            raise TFLMError(f"board TFLM {self.commit} worker died (exit {self.process.returncode})", err[-500:])
        reply = json.loads(line)
        data = self.process.stdout.read(reply.get("nbytes", 0))
        if not reply.get("ok"):
            raise TFLMError(reply["error"], reply.get("log", ""))
        return reply, data

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_workers: dict[str, Worker] = {}


def worker(commit: str) -> Worker:
    w = _workers.get(commit)
    if w is None or w.process.poll() is not None:
        w = _workers[commit] = Worker(commit)
    return w


@atexit.register
def close_all() -> None:
    for w in _workers.values():
        w.close()
    _workers.clear()


@dataclass
class LoadedModel:
    """A model allocated in the board's TFLM; `raw(batch)` gives its raw outputs, one row per input."""

    commit: str
    id: int
    input: dict
    output: dict
    log: str

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        shape = tuple(self.input["shape"])
        dtype = np.dtype(self.input["dtype"])
        batch = np.ascontiguousarray(inputs, dtype=dtype).reshape((-1,) + shape[1:])
        reply, data = worker(self.commit).request(
            {"cmd": "invoke", "id": self.id, "shape": list(batch.shape), "dtype": dtype.name}, batch.tobytes())
        return np.frombuffer(data, dtype=np.dtype(reply["dtype"])).reshape(reply["shape"])

    def free(self) -> None:
        w = _workers.get(self.commit)
        if w is not None and w.process.poll() is None:
            w.request({"cmd": "free", "id": self.id})


def load(commit: str, model: bytes, arena_size: int | None = None) -> LoadedModel:
    """Allocate the model in the board TFLM of `commit`; raises TFLMError as the board would refuse it."""
    reply, _ = worker(commit).request({"cmd": "load", "arena": arena_size}, bytes(model))
    return LoadedModel(commit, reply["id"], reply["input"], reply["output"], reply.get("log", ""))


def info(commit: str) -> dict:
    return worker(commit).request({"cmd": "info"})[0]
