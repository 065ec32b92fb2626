"""The board's own interpreter: which TFLM each OpenMV firmware links, run for real.

- `firmware`: firmware version -> the interpreter it links (from boards/*.json) and the ops its
  resolver registers.
- `flatbuf`: reading a .tflite (ops, tensor types, per-channel dense layers) and the legacy rewrite.
- `env`: the isolated environment with the exact tflite-micro wheels (`python -m host.boardtflm setup`).
- `worker` / `client`: a persistent child process running those wheels.
- `board`: one interface, "run this model as firmware X would", used by checks, build and simulator.
"""
