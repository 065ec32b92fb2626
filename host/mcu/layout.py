"""The fixed memory protocol of the harness (mirror of mcu/harness.h)."""

from __future__ import annotations

import struct

CONTROL_ADDR = 0x60000000
MODEL_ADDR = 0x60010000
INPUT_ADDR = 0x61000000
OUTPUT_ADDR = 0x62000000
ARENA_ADDR = 0x63000000
REGION = 0x01000000  # each of the four regions above spans 16 MB
MODEL_MAX = REGION - (MODEL_ADDR - CONTROL_ADDR)

MMIO_ADDR = 0x40000000
CONSOLE, OPBEGIN, OPEND, INVOKE, EXIT = 0x00, 0x04, 0x08, 0x0C, 0x10

MAGIC = 0x4D434D54
# magic model_size arena_size n_samples input_stride output_stride status arena_used n_inputs
# n_outputs n_ops input_bytes done version
CONTROL = struct.Struct("<14I")
CONTROL_FIELDS = ("magic", "model_size", "arena_size", "n_samples", "input_stride", "output_stride",
                  "status", "arena_used", "n_inputs", "n_outputs", "n_ops", "input_bytes", "done",
                  "version")

STATUS = {
    0: "ok",
    1: "bad control block",
    2: "Unsupported model schema",
    3: "Failed to allocate tensors",
    4: "input size mismatch",
    5: "Invoke failed",
    0xFA000000: "hard fault",
    0xAB000000: "abort() called",
    0xCC000000: "pure virtual call",
}
