"""The board's TFLM in a child process: runs inside `.board-tflm/venv` (numpy < 2), never imports
tinymask. Started by host/interp/client.py as `python worker.py WHEEL_DIR`.

Protocol (binary stdin/stdout): a request is one JSON line, then `nbytes` raw bytes; so is a reply.
- {"cmd": "load", "nbytes": N, "arena": int|null} + model -> {"ok", "id", "input", "output"}
- {"cmd": "invoke", "id": k, "shape": [...], "nbytes": N} + int8 inputs -> raw outputs, one per row
- {"cmd": "free", "id": k}; {"cmd": "info"}
Errors reply {"ok": false, "error": text, "log": what TFLM printed}.
"""

import json
import os
import sys
import tempfile
import types

sys.path.insert(0, sys.argv[1])

# The wheel's runtime.py imports flatbuffer_utils and schema_util, which import two TensorFlow
# helpers: gfile (file helpers the interpreter never calls; it uses only count_resource_variables)
# and all_util.remove_undocumented (trims a module's public names). The wheel lists tensorflow as a
# dependency for them; instead of 500 MB of TensorFlow, gfile fails loudly if ever used and
# remove_undocumented keeps every name.
def _module(name, **attrs):
    module = sys.modules.setdefault(name, types.ModuleType(name))
    module.__path__ = []
    vars(module).update(attrs)
    return module


def _no_gfile(name):
    raise ImportError(f"gfile.{name}: TensorFlow is not installed in .board-tflm")


for _name in ("tensorflow", "tensorflow.python", "tensorflow.python.platform", "tensorflow.python.util"):
    _module(_name)
sys.modules["tensorflow.python.platform"].gfile = _module("tensorflow.python.platform.gfile", __getattr__=_no_gfile)
sys.modules["tensorflow.python.util"].all_util = _module(
    "tensorflow.python.util.all_util", remove_undocumented=lambda *args, **kwargs: None)

# Replies go to a private copy of stdout; the interpreter's own prints (Python and C) go to a file.
_protocol = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
import numpy as np  # noqa: E402
from tflite_micro.python.tflite_micro import runtime  # noqa: E402

_log = tempfile.TemporaryFile()
os.dup2(_log.fileno(), 1)
os.dup2(_log.fileno(), 2)
sys.stdout = sys.stderr = open(os.devnull, "w")

_requests = sys.stdin.buffer
_models = {}


def _read_log():
    _log.flush()
    _log.seek(0)
    text = _log.read().decode(errors="replace")
    _log.seek(0)
    _log.truncate()
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("Number of resource variables"))


def _details(d):
    q = d.get("quantization_parameters") or {}
    return {
        "shape": [int(v) for v in d["shape"]],
        "dtype": np.dtype(d["dtype"]).name,
        "scales": [float(v) for v in q.get("scales", [])],
        "zero_points": [int(v) for v in q.get("zero_points", [])],
    }


def _load(header, payload):
    interpreter = runtime.Interpreter.from_bytes(payload, arena_size=header.get("arena"))
    key = max(_models, default=0) + 1
    inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)
    _models[key] = (interpreter, inp)
    return {"id": key, "input": _details(inp), "output": _details(out)}, b""


def _invoke(header, payload):
    interpreter, inp = _models[header["id"]]
    batch = np.frombuffer(payload, dtype=np.dtype(header["dtype"])).reshape(header["shape"])
    rows = []
    for sample in batch:
        interpreter.set_input(sample.reshape(inp["shape"]), 0)
        interpreter.invoke()
        rows.append(np.asarray(interpreter.get_output(0)).reshape(-1))
    out = np.stack(rows) if rows else np.zeros((0, 0), np.int8)
    return {"shape": list(out.shape), "dtype": out.dtype.name}, out.tobytes()


def _free(header, payload):
    _models.pop(header["id"], None)
    return {}, b""


def _info(header, payload):
    import importlib.metadata

    return {"version": importlib.metadata.version("tflite_micro"), "python": sys.version.split()[0],
            "numpy": np.__version__}, b""


COMMANDS = {"load": _load, "invoke": _invoke, "free": _free, "info": _info}


def _reply(header, payload=b""):
    header["nbytes"] = len(payload)
    _protocol.write(json.dumps(header).encode() + b"\n" + payload)


def main():
    while True:
        line = _requests.readline()
        if not line:
            return
        header = json.loads(line)
        payload = _requests.read(header.get("nbytes", 0))
        try:
            reply, data = COMMANDS[header["cmd"]](header, payload)
            reply["ok"] = True
        except Exception as exc:  # every TFLM failure goes back to the caller as text
            reply, data = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, b""
        reply["log"] = _read_log()
        _reply(reply, data)


if len(sys.argv) == 5 and sys.argv[2] == "--probe":
    # One arena probe (host.interp.board.arena_bytes): exit 0 and "fits" when the model allocates
    # and invokes in that arena. A starved arena can crash TFLM, hence one process per probe.
    try:
        probe = runtime.Interpreter.from_bytes(open(sys.argv[3], "rb").read(), arena_size=int(sys.argv[4]))
        probe.invoke()
    except (RuntimeError, ValueError):
        sys.exit(3)
    _protocol.write(b"fits\n")
    sys.exit(0)

main()
