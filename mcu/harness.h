// The fixed memory protocol between the harness (mcu/harness.cc) and its host (host/mcu/emu.py).
// Keep in sync with host/mcu/layout.py.
#pragma once
#include <stdint.h>

#define MCU_CONTROL_ADDR 0x60000000u  // struct mcu_control, written by the host before reset
#define MCU_MODEL_ADDR   0x60010000u  // the .tflite bytes (up to 16 MB)
#define MCU_INPUT_ADDR   0x61000000u  // n_samples x input_stride bytes
#define MCU_OUTPUT_ADDR  0x62000000u  // n_samples x output_stride bytes, written by the harness
#define MCU_ARENA_ADDR   0x63000000u  // the tensor arena (arena_size bytes)

#define MCU_MMIO_ADDR    0x40000000u  // one page the host watches
#define MCU_MMIO_CONSOLE (MCU_MMIO_ADDR + 0x00)  // byte writes: DebugLog text
#define MCU_MMIO_OPBEGIN (MCU_MMIO_ADDR + 0x04)  // node index: an op's invoke starts
#define MCU_MMIO_OPEND   (MCU_MMIO_ADDR + 0x08)  // node index: an op's invoke returned
#define MCU_MMIO_INVOKE  (MCU_MMIO_ADDR + 0x0c)  // sample index | 0x80000000 at Invoke() start, sample at end
#define MCU_MMIO_EXIT    (MCU_MMIO_ADDR + 0x10)  // status: the harness is done

#define MCU_MAGIC 0x4d434d54u  // "TMCM"

enum mcu_status {
  MCU_OK = 0,
  MCU_BAD_CONTROL = 1,
  MCU_BAD_SCHEMA = 2,
  MCU_ALLOCATE_FAILED = 3,
  MCU_BAD_INPUT_SIZE = 4,
  MCU_INVOKE_FAILED = 5,
  MCU_BAD_TYPE = 6,
};

struct mcu_control {
  uint32_t magic;          // in: MCU_MAGIC
  uint32_t model_size;     // in
  uint32_t arena_size;     // in
  uint32_t n_samples;      // in
  uint32_t input_stride;   // in: bytes per sample, all inputs concatenated
  uint32_t output_stride;  // out: bytes per sample, all outputs concatenated
  uint32_t status;         // out: enum mcu_status
  uint32_t arena_used;     // out: interpreter.arena_used_bytes()
  uint32_t n_inputs;       // out
  uint32_t n_outputs;      // out
  uint32_t n_ops;          // out: operators in subgraph 0
  uint32_t input_bytes;    // out: what the model wants per sample
  uint32_t done;           // out: samples finished
  uint32_t version;        // out: harness protocol version
};
