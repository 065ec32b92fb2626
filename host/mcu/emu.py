"""Run the harness ELF (mcu/, the board's libtflm) on an emulated Cortex-M7 with unicorn.

`Harness.run(model, inputs)` maps the H7-like memory of mcu/harness.ld plus the fixed regions of
mcu/harness.h, writes the .tflite and the int8 inputs there, starts at the reset handler and
stops when the harness writes its exit code. With `count=True` a block hook adds each translated
block's instruction count (Thumb-2 halfwords decoded once per block and cached), and the op and
invoke markers the harness writes record that running count at each boundary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from host.errors import UserError
from host.mcu import elfimage, layout
from host.mcu.fpu64 import DoubleFpu

PACKAGE = Path(__file__).resolve().parent
DEFAULT_ELF = PACKAGE / "elf" / "harness-release.elf"
LOGS_ELF = PACKAGE / "elf" / "harness-release_with_logs.elf"
DEFAULT_ARENA = 4 * 1024 * 1024
PPB = 0xE0000000  # the private peripheral bus: the reset handler writes CPACR there
INSTALL_HINT = "the emulator is missing: pip install unicorn (or pip install -e '.[mcu]')"


class McuHang(UserError):
    def __init__(self, pc: int):
        self.pc = pc
        super().__init__(f"the library stopped in an endless loop at {pc:#010x} (a failed TFLITE_CHECK or abort():"
                         " on the camera the call would never return)")


def _unicorn():
    try:
        import unicorn
        from unicorn import arm_const
    except ImportError as exc:
        raise UserError(INSTALL_HINT) from exc
    return unicorn, arm_const


def thumb_instructions(code: bytes) -> int:
    """Instructions in a run of Thumb-2 code: a halfword whose top five bits are 11101, 11110 or
    11111 starts a 32-bit instruction."""
    hw = np.frombuffer(code[: len(code) & ~1], dtype="<u2")
    n, i, total = len(hw), 0, 0
    while i < n:
        i += 2 if (hw[i] >> 11) >= 0x1D else 1
        total += 1
    return total


@dataclass
class Run:
    status: int
    console: str
    outputs: np.ndarray  # (n_samples, output_stride) int8, all outputs concatenated
    arena_used: int
    input_bytes: int
    n_ops: int
    instructions: int = 0  # everything from reset to exit (counted runs only)
    invoke_instructions: list[int] = field(default_factory=list)  # per sample
    op_instructions: list[list[int]] = field(default_factory=list)  # per sample, per node
    seconds: float = 0.0

    @property
    def message(self) -> str:
        lines = [line for line in self.console.splitlines() if line.strip()]
        return lines[-1] if lines else layout.STATUS.get(self.status, f"status {self.status:#x}")

    @property
    def ok(self) -> bool:
        return self.status == 0


class Harness:
    def __init__(self, elf_path: Path | str | None = None):
        self.elf_path = Path(elf_path) if elf_path else DEFAULT_ELF
        if not self.elf_path.is_file():
            raise UserError(f"{self.elf_path}: no harness ELF; build it with mcu/build.sh")
        self.image = elfimage.load(self.elf_path)
        self._block_counts: dict[tuple[int, int], int] = {}
        self._spins: list[int] | None = None

    def _spin_addresses(self) -> list[int]:
        if self._spins is None:
            seg = self.image.segments[0]
            hw = np.frombuffer(seg.data[: len(seg.data) & ~1], "<u2")
            self._spins = [seg.address + 2 * int(i) for i in np.flatnonzero(hw == 0xE7FE)]
        return self._spins

    def run(self, model: bytes, inputs: np.ndarray | None = None, *, count: bool = False,
            arena_size: int = DEFAULT_ARENA, timeout_s: float = 600.0) -> Run:
        unicorn, arm = _unicorn()
        if len(model) > layout.MODEL_MAX:
            raise UserError(f"model of {len(model)} bytes is larger than the harness's {layout.MODEL_MAX}")
        if inputs is None:
            inputs = np.zeros((0, 0), np.int8)
        inputs = np.ascontiguousarray(inputs).view(np.int8)
        inputs = inputs.reshape(len(inputs), -1) if inputs.size else inputs.reshape(len(inputs), 0)
        n_samples, stride = inputs.shape
        if n_samples * stride > layout.REGION:
            raise UserError("too many inputs for one run: split them")
        arena_size = (arena_size + 0xFFF) & ~0xFFF

        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(arm.UC_CPU_ARM_CORTEX_M7)
        for seg in self.image.segments:
            start = seg.address & ~0xFFF
            end = (seg.address + seg.mem_size + 0xFFF) & ~0xFFF
            uc.mem_map(start, end - start)
            uc.mem_write(seg.address, seg.data)
        for base, size in ((layout.CONTROL_ADDR, layout.REGION), (layout.INPUT_ADDR, layout.REGION),
                           (layout.OUTPUT_ADDR, layout.REGION), (layout.ARENA_ADDR, arena_size),
                           (PPB, 0x100000)):
            uc.mem_map(base, size)
        control = dict.fromkeys(layout.CONTROL_FIELDS, 0)
        control.update(magic=layout.MAGIC, model_size=len(model), arena_size=arena_size,
                       n_samples=n_samples, input_stride=stride)
        uc.mem_write(layout.CONTROL_ADDR, layout.CONTROL.pack(*control.values()))
        uc.mem_write(layout.MODEL_ADDR, bytes(model))
        if n_samples:
            uc.mem_write(layout.INPUT_ADDR, inputs.tobytes())

        state = {"icount": 0, "exit": None, "console": bytearray(), "invoke_start": 0,
                 "op_start": {}, "ops": [], "invokes": []}
        cache = self._block_counts

        def on_block(uc_, address, size, _):
            key = (address, size)
            n = cache.get(key)
            if n is None:
                n = cache[key] = thumb_instructions(bytes(uc_.mem_read(address, size)))
            state["icount"] += n

        def mmio_read(uc_, offset, size, _):
            return 0

        def mmio_write(uc_, offset, size, value, _):
            if offset == layout.CONSOLE:
                state["console"].append(value & 0xFF)
            elif offset == layout.OPBEGIN:
                state["op_start"][value] = state["icount"]
            elif offset == layout.OPEND:
                begin = state["op_start"].pop(value, state["icount"])
                state["ops"][-1].append(state["icount"] - begin) if state["ops"] else None
            elif offset == layout.INVOKE:
                if value & 0x80000000:
                    state["invoke_start"] = state["icount"]
                    state["ops"].append([])
                else:
                    state["invokes"].append(state["icount"] - state["invoke_start"])
            elif offset == layout.EXIT:
                state["exit"] = value
                uc_.emu_stop()

        uc.mmio_map(layout.MMIO_ADDR, 0x1000, mmio_read, None, mmio_write, None)
        fpu = DoubleFpu(arm)
        uc.hook_add(unicorn.UC_HOOK_INSN_INVALID, fpu.hook)
        if count:
            uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
        vectors = np.frombuffer(bytes(uc.mem_read(self.image.segments[0].address, 8)), "<u4")
        uc.reg_write(arm.UC_ARM_REG_SP, int(vectors[0]))
        # `b .` (0xe7fe) is how the library's TFLITE_CHECK and abort() stop: spinning forever, which
        # is what the camera would do too. Each such halfword in the image gets a one-address hook.
        state["hang"] = None

        def on_hang(uc_, address, size, _):
            state["hang"] = address
            uc_.emu_stop()

        for address in self._spin_addresses():
            uc.hook_add(unicorn.UC_HOOK_CODE, on_hang, begin=address, end=address)
        t0 = time.perf_counter()
        try:
            uc.emu_start(int(vectors[1]) | 1, 0xFFFFFFFF, timeout=int(timeout_s * 1e6))
        except unicorn.UcError as exc:
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise UserError(f"emulated Cortex-M7 stopped at {pc:#010x}: {exc}") from exc
        if state["hang"] is not None:
            raise McuHang(state["hang"])
        if state["exit"] is None:
            raise UserError(f"the harness did not finish within {timeout_s:.0f} s of emulation")
        seconds = time.perf_counter() - t0
        fields = dict(zip(layout.CONTROL_FIELDS,
                          layout.CONTROL.unpack(bytes(uc.mem_read(layout.CONTROL_ADDR, layout.CONTROL.size)))))
        out_stride = fields["output_stride"]
        done = fields["done"]
        raw = bytes(uc.mem_read(layout.OUTPUT_ADDR, done * out_stride)) if done and out_stride else b""
        outputs = np.frombuffer(raw, np.int8).reshape(done, out_stride) if done else np.zeros((0, out_stride), np.int8)
        return Run(status=state["exit"], console=state["console"].decode(errors="replace"),
                   outputs=outputs.copy(), arena_used=fields["arena_used"],
                   input_bytes=fields["input_bytes"], n_ops=fields["n_ops"],
                   instructions=state["icount"], invoke_instructions=state["invokes"] if count else [],
                   op_instructions=state["ops"] if count else [], seconds=seconds)
