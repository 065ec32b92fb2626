"""The board's memory in the simulator (issue 11): heap blocks per firmware range, the model's file copy
and arena on the heap, the 4.5.6-4.5.9 fb_alloc leak, and the firmware's reset-on-memory recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import simboard
from hypothesis import given, settings
from hypothesis import strategies as st
from simboard import MASK, bundle_dir, events, frames_of

from host.boards import load_board
from host.sim import heap
from host.sim.board import Faults
from host.sim.bundle import load
from tools.payload import firmware_module

REPO = Path(__file__).resolve().parent.parent

recovery = firmware_module("recovery")


def test_first_fit_never_spans_two_blocks_and_frees_make_room_again():
    h = heap.Heap([1024, 4096])
    small = h.alloc(896, "a")
    assert small.block == 0
    big = h.alloc(3072, "b")  # does not fit block 0's last 128 bytes: block 1
    assert big.block == 1 and h.largest_free() == 1024
    with pytest.raises(MemoryError, match="allocating 1100 bytes"):
        h.alloc(1100, "c")  # 128 + 1024 bytes free, in two runs: no single run is big enough
    h.free(big)
    assert h.alloc(3500, "d").block == 1


def test_an_error_survivor_splits_the_heap_for_a_bigger_reload():
    """Objects an inference error leaves alive land after the arena; a model that grows on reload
    no longer fits although the total free memory would hold it."""
    memory = heap.BoardMemory(heap.MemoryRange("t", (4, 8, 0), (4, 8, 1), [200_000], 0, 80_000, "heap", False, "test"),
                              firmware_bytes=10_000, arena_bytes=20_000)
    first = heap.load_model(memory, 150_000, "ml", "m.tflite")
    heap.inference_failed(memory)
    first.free()
    assert memory.heap.free_bytes() > heap.model_copy_bytes(176_000, (4, 8, 0))
    with pytest.raises(MemoryError):
        heap.load_model(memory, 176_000, "ml", "m.tflite")


def test_a_failed_load_on_4_5_6_to_4_5_9_leaks_fb_alloc_until_a_reset():
    spec = heap.MemoryRange("t", (4, 5, 6), (4, 5, 9), [100_000], 0, 80_000, "heap", True, "test")
    memory = heap.BoardMemory(spec, firmware_bytes=10_000, arena_bytes=20_000)
    with pytest.raises(MemoryError):
        heap.load_model(memory, 150_000, "ml", "big.tflite")
    with pytest.raises(MemoryError, match=heap.FB_FULL):
        heap.load_model(memory, 10_000, "ml", "small.tflite")  # would fit, but fb_alloc is gone
    with pytest.raises(MemoryError, match=heap.FB_FULL):
        memory.check_fb_alloc()  # and img.save's JPEG buffers with it
    memory.reset()
    assert heap.load_model(memory, 10_000, "ml", "small.tflite") is not None


@pytest.mark.parametrize("version, memory_error, resets, action", [
    ("4.8.0", True, 0, recovery.RESET), ("4.8.0", True, recovery.MAX_RESETS, recovery.STOP),
    ("4.6.0", False, 0, recovery.RETRY), ("4.5.5", False, 5, recovery.RETRY),
    ("4.5.6", False, 0, recovery.RESET), ("4.5.9", False, recovery.MAX_RESETS, recovery.STOP),
    ("v4.5.7-12-gabc", False, 1, recovery.RESET),
])
def test_recovery_decides_by_firmware_and_error(version, memory_error, resets, action):
    assert recovery.decide(recovery.version_tuple(version), memory_error, resets) == action


def test_a_load_that_failed_before_the_interpreter_never_resets():
    """A missing file or a sha256 mismatch is found before ml.Model(): nothing can have leaked."""
    assert recovery.decide((4, 5, 6), False, 0, in_interpreter=False) == recovery.RETRY
    assert recovery.decide((4, 6, 0), False, 0, in_interpreter=False, loaded_before=True) == recovery.RETRY


def test_an_interpreter_failure_of_a_model_that_loaded_before_is_memory():
    """From 4.6.0 an arena that no longer fits the fragmented heap is ValueError("Failed to allocate tensors"),
    the interpreter's refusal: for a model already loaded in this boot it can only be the heap."""
    assert recovery.decide((4, 6, 0), False, 0, loaded_before=False) == recovery.RETRY  # refused from the start
    assert recovery.decide((4, 8, 1), False, 0, loaded_before=True) == recovery.RESET
    assert recovery.decide((4, 8, 1), False, recovery.MAX_RESETS, loaded_before=True) == recovery.STOP


def test_from_4_6_an_arena_that_no_longer_fits_is_a_value_error_not_a_memory_error():
    """Found in review against tflm_backend.cc (v4.6.0, v4.8.1): the trial arena is the largest free heap
    run, and AllocateTensors() failing in it raises ValueError. The model copy still raises MemoryError."""
    spec = heap.MemoryRange("t", (4, 8, 0), (4, 8, 1), [200_000], 0, 80_000, "heap", False, "test")
    memory = heap.BoardMemory(spec, firmware_bytes=10_000, arena_bytes=60_000)
    first = heap.load_model(memory, 100_000, "ml", "m.tflite")
    assert memory.heap.used() >= 10_000 + heap.model_copy_bytes(100_000, (4, 8, 0)) + heap.backend_bytes(60_000, False)
    heap.inference_failed(memory)  # leaves objects after the arena: the heap splits
    first.free()
    with pytest.raises(ValueError, match=heap.TENSORS_FAILED):
        heap.load_model(memory, 106_000, "ml", "m.tflite")  # the copy fits; its arena no longer does
    with pytest.raises(MemoryError):
        heap.load_model(memory, 190_000, "ml", "m.tflite")  # the copy itself does not fit
    assert memory.heap.used() < 20_000  # nothing of the failed loads stays allocated


def too_big_bundle():
    """The reference bundle with an arena larger than any H7 heap block (267 KB): on 4.8 a model under
    64 KB goes to the first block and an arena beside it to the second, so only this cannot load."""
    bundle = load(bundle_dir(), "openmv_h7")
    bundle.card["arena_bytes"] = 280_000
    return bundle


def run(tmp_path, firmware, faults=None, bundle=None, frames=12, max_boots=6, config=None):
    from host.sim import SimOptions, simulate

    cfg = {"threshold": simboard.THRESHOLD, "debounce_frames": 3, "open_ms": 500, "report_ms": 0, "recover_ms": 200}
    cfg.update(config or {})
    return simulate(SimOptions(frames=frames_of(MASK, frames), bundle=bundle or bundle_dir(), config=cfg,
                               firmware_version=firmware, faults=faults or Faults(), max_boots=max_boots,
                               sd_dir=tmp_path / "sd", flash_dir=tmp_path / "flash", frames_count=frames * 4))


def test_an_arena_too_big_for_4_5_6s_fb_alloc_leaks_so_the_board_resets_at_most_three_times(tmp_path):
    result = run(tmp_path, "4.5.6", bundle=too_big_bundle())
    errors = events(result, "model_error")
    resets = events(result, "reset")
    assert all(heap.TENSORS_FAILED in e.detail for e in errors[:-1])  # the trial arena is fb_alloc_all there
    assert len(resets) == recovery.MAX_RESETS == result.requested_resets
    assert "gave up after 3 resets" in errors[-1].detail
    assert result.boots == recovery.MAX_RESETS + 1
    assert result.calls["ml.Model"] == result.boots  # one load per boot: never a retry into the leak
    assert not any(result.relay_active(level) for _, level in result.relay.history)  # the door never opened


@pytest.mark.parametrize("firmware", ["4.6.0", "4.8.0"])
def test_from_4_6_an_arena_larger_than_any_heap_block_is_refused_and_retried_without_resets(tmp_path, firmware):
    """As on the board: ValueError("Failed to allocate tensors") at the first load is the model's problem,
    which no reset mends; the door stays closed and the load is retried every recover_ms."""
    result = run(tmp_path, firmware, bundle=too_big_bundle())
    errors = events(result, "model_error")
    assert errors and all(heap.TENSORS_FAILED in e.detail for e in errors)
    assert result.requested_resets == 0 and result.boots == 1 and result.calls["ml.Model"] > 2
    assert not any(result.relay_active(level) for _, level in result.relay.history)


def test_on_4_5_6_any_failed_load_resets_instead_of_retrying_into_the_leak(tmp_path):
    """A cut model that reaches ml.Model() (no sha256 to stop it first) leaks on 4.5.6: reset, never retry."""
    leaking = run(tmp_path / "456", "4.5.6", faults=Faults(corrupt_model=True), config={"model_sha256": ""})
    assert leaking.requested_resets == recovery.MAX_RESETS
    assert leaking.calls["ml.Model"] == recovery.MAX_RESETS + 1
    assert not any("Out of fast frame buffer" in e.detail for e in events(leaking, "model_error"))
    retrying = run(tmp_path / "460", "4.6.0", faults=Faults(corrupt_model=True), config={"model_sha256": ""})
    assert retrying.requested_resets == 0 and retrying.boots == 1
    assert retrying.calls["ml.Model"] > 2  # nothing leaks on 4.6: retry every recover_ms


@pytest.mark.parametrize("firmware", ["4.5.6", "4.6.0", "4.8.0"])
def test_the_reference_bundle_loads_and_reloads_after_inference_errors(tmp_path, firmware):
    result = run(tmp_path, firmware, faults=Faults.parse(["inference@3", "inference@6"]))
    assert result.requested_resets == 0 and result.boots == 1
    assert [e.detail for e in events(result, "error")] and not events(result, "model_error")
    opened = events(result, "door_open")
    assert opened  # after the reloads the door still works


def test_mem_free_is_what_the_firmware_model_and_arena_leave(tmp_path):
    memory = heap.for_board("openmv_h7", (4, 8, 0), arena_bytes=25_088)
    before = memory.heap.free_bytes()
    heap.load_model(memory, 137_312, "ml", "tinymask.tflite")
    after = memory.heap.free_bytes()
    assert 90_000 < after < 150_000 and before - after >= 137_312 + 25_088


def test_simulated_watchdog_constructor_reprograms_the_one_watchdog(tmp_path):
    """stm32 machine_wdt.c (openmv/micropython 827c2b859): WDT() again returns the same watchdog
    with the new timeout, reloaded; an id other than 0 or a timeout above ~32.7 s is refused."""
    from host.sim.board import Board, Costs
    from host.sim.frames import FrameSource
    from host.sim.hardware import make_machine

    board = Board(frames=FrameSource([object()]), storage_dirs=(None, tmp_path), firmware_version="4.6.0", camera_api="csi",
                  faults=Faults(), costs=Costs(), frames_count=0, time_limit_ms=1e9)
    machine = make_machine(board)
    first = machine.WDT(timeout=5000)
    again = machine.WDT(timeout=30000)
    assert again is first and board.watchdog.timeout_ms == 29952 and board.watchdog.feeds == 1
    with pytest.raises(ValueError, match="too long"):
        machine.WDT(timeout=40000)
    with pytest.raises(ValueError, match="doesn't exist"):
        machine.WDT(id=1)


def test_the_profiles_firmware_heap_is_measured_from_todays_firmware():
    """boards/*.json firmware_retained_bytes is what the firmware keeps on a real MicroPython heap:
    not below today's measurement (an understatement hides a heap that no longer fits), and not stale."""
    from host.boards import load_board

    measured = heap.measure_firmware_retained()
    for board in ("openmv_h7", "openmv_h7_plus", "openmv_rt1062"):
        stated = heap.firmware_retained_bytes(load_board(board).data)
        assert measured <= stated < measured + 2048, (board, stated, measured)


def test_load_to_fb_puts_the_model_copy_on_the_frame_buffer_stack_not_the_heap():
    """Found in review: model_load_to_fb was accepted and ignored. py_ml.c make_new (v4.6.0, v4.8.1)
    fb_allocs the copy and marks it permanent; __del__ gives it back; too big is the fb_alloc error."""
    spec = heap.MemoryRange("t", (4, 8, 0), (4, 8, 1), [100_000], 0, 80_000, "heap", False, "test")
    memory = heap.BoardMemory(spec, firmware_bytes=10_000, arena_bytes=20_000)
    with pytest.raises(ValueError, match=heap.TENSORS_FAILED):
        heap.load_model(memory, 75_000, "ml", "m.tflite")  # on the heap the copy leaves no room for the arena
    loaded = heap.load_model(memory, 75_000, "ml", "m.tflite", to_fb=True)
    assert memory.fb_model_bytes == heap.fb_model_bytes(75_000, (4, 8, 0)) and memory.heap.used() < 10_000 + 160 + heap.backend_bytes(20_000, False) + 64
    with pytest.raises(MemoryError, match=heap.FB_FULL):
        heap.load_model(memory, 10_000, "ml", "n.tflite", to_fb=True)  # 5,000 bytes of fb_alloc left
    loaded.free()
    assert memory.fb_model_bytes == 0 and heap.load_model(memory, 10_000, "ml", "n.tflite", to_fb=True) is not None


@pytest.mark.parametrize("first, nbytes, taken", [
    ((4, 8, 0), 63_560, 4 + 63_584 + 28 + 4),  # mark, ALIGN32(size) + 28 (CACHE_ALIGN), header
    ((4, 6, 0), 1, 4 + 32 + 28 + 4),
    ((4, 6, 0), 64, 4 + 64 + 28 + 4),
    ((4, 5, 6), 63_561, 4 + 63_564 + 4),  # PREFER_SIZE: the size rounded to a word, no cache alignment
    ((4, 5, 5), 8, 4 + 8 + 4),
])
def test_a_model_on_the_frame_buffer_stack_takes_what_fb_alloc_takes(first, nbytes, taken):
    """fb_alloc() (common/fb_alloc.c v4.8.1, src/omv/alloc/fb_alloc.c v4.5.9 / v4.6.0) and py_ml.c's hints."""
    assert heap.fb_model_bytes(nbytes, first) == taken


def test_a_model_that_fits_the_frame_buffer_stack_only_without_the_cache_padding_is_refused():
    """The room check counts the padding: a file exactly the size of the free stack does not fit on 4.6+."""
    spec = heap.MemoryRange("t", (4, 8, 0), (4, 8, 1), [100_000], 0, 64_000, "heap", False, "test")
    memory = heap.BoardMemory(spec, firmware_bytes=10_000, arena_bytes=2_000)
    with pytest.raises(MemoryError, match=heap.FB_FULL):
        heap.load_model(memory, 64_000, "ml", "m.tflite", to_fb=True)
    assert memory.fb_model_bytes == 0
    assert heap.load_model(memory, 64_000 - 64, "ml", "m.tflite", to_fb=True) is not None


def test_the_watchdog_period_is_what_the_stm32_iwdg_gets():
    """Found in the source audit: machine_wdt.c halves the timeout while choosing the prescaler, so the
    period rounds down: 5000 ms fires at 4,992 ms, 30000 at 29,952; below 512 ms it is exact."""
    from host.sim.hardware import iwdg_period_ms

    assert [iwdg_period_ms(t) for t in (500, 511, 512, 5000, 30000, 32767)] == [500, 511, 512, 4992, 29952, 32704]


@pytest.mark.parametrize("first, nbytes, copy", [
    ((4, 3, 3), 63_560, 63_560), ((4, 5, 6), 63_560, 63_560),  # xalloc(size): py_tf.c v4.5.5, py_ml.c v4.5.9
    ((4, 6, 0), 63_560, 63_584 + 31), ((4, 8, 0), 63_560, 63_584 + 31),  # ALIGN32(size) + 31: py_ml.c v4.6.0, v4.8.1
    ((4, 8, 0), 64_000, 64_000 + 31)])
def test_the_model_copy_takes_what_py_ml_c_allocates_at_each_firmware(first, nbytes, copy):
    """The copy fits a block with exactly its allocation free, and the MemoryError names the board's size."""
    assert heap.model_copy_bytes(nbytes, first) == copy
    firmware = 1_024
    for spare, fits in ((0, True), (-heap.GC_BLOCK, False)):
        block = firmware + heap.LOAD_PIN_BYTES + -(-copy // heap.GC_BLOCK) * heap.GC_BLOCK + spare
        spec = heap.MemoryRange("t", first, first, [block], 0, 80_000, "fb_alloc", False, "test")
        memory = heap.BoardMemory(spec, firmware_bytes=firmware)
        if fits:
            heap.load_model(memory, nbytes, "tf", "m.tflite")
            assert memory.heap.free_bytes() == 0
        else:
            with pytest.raises(MemoryError, match=f"allocating {copy} bytes"):
                heap.load_model(memory, nbytes, "tf", "m.tflite")


def test_the_builds_heap_check_counts_what_the_simulated_board_allocates():
    """host.make.memfit (the build's check and the README's headroom) and the simulator's ml.Model() agree
    on every heap-arena firmware range, up to the GC's 16-byte rounding of each of the five allocations."""
    import dataclasses

    from host.boards import load_board
    from host.make import memfit

    card = json.loads((REPO / "models" / "tinymask" / "model_card.json").read_text())
    fits = [f for f in memfit.fits(load_board("openmv_h7"), card["model_bytes"], card["arena_bytes"])
            if f.range.arena_on == "heap"]
    assert fits
    for fit in fits:
        spec = dataclasses.replace(fit.range, heap_blocks=[fit.range.largest_block])
        memory = heap.BoardMemory(spec, firmware_bytes=fit.firmware_bytes, arena_bytes=card["arena_bytes"])
        heap.load_model(memory, card["model_bytes"], "ml", "models/tinymask.tflite")
        unseen = memory.heap.free_bytes() + heap.LOAD_PIN_BYTES - fit.headroom
        assert -6 * heap.GC_BLOCK < unseen <= 0, fit.range.label


def test_a_load_to_fb_model_that_leaves_too_little_stack_makes_get_statistics_fail_as_on_the_board():
    """py_image_get_statistics fb_allocs its L, A and B float bins (101 + 256 + 256 by default) after a
    mark (modules/py_image.c v4.8.1): with a load_to_fb model filling the stack, the presence gate's call
    raises the fb_alloc MemoryError on the board, so it does in the simulator."""
    import types

    import numpy as np

    from host.sim.camera import SimImage

    need = 4 + sum(4 * n + 4 for n in (101, 256, 256))
    spec = heap.MemoryRange("t", (4, 8, 0), (4, 8, 1), [200_000], 0, 70_000, "heap", False, "test")
    largest = max(n for n in range(60_000, 70_000, 4) if heap.fb_model_bytes(n, spec.first) <= spec.fb_alloc_bytes - need)
    for model_bytes, fits in ((largest, True), (largest + 4, False)):
        memory = heap.BoardMemory(spec, firmware_bytes=10_000, arena_bytes=2_000)
        heap.load_model(memory, model_bytes, "ml", "m.tflite", to_fb=True)
        left = spec.fb_alloc_bytes - memory.fb_model_bytes
        assert (left >= need) == fits
        board = types.SimpleNamespace(memory=memory, check_alive=lambda: None,
                                      clock=types.SimpleNamespace(advance=lambda ms: None))
        img = SimImage(board, np.full((40, 40), 0x7BEF, np.uint16))
        if fits:
            assert img.get_statistics(roi=(0, 0, 24, 24)).l_mean() >= 0
            memory.check_fb_room([4 * 101, 4 * 256, 4 * 256])
        else:
            with pytest.raises(MemoryError, match=heap.FB_FULL):
                img.get_statistics(roi=(0, 0, 24, 24))


# --- the fb_alloc room above the frame buffers (docs/platform.md item 7) ---------------------------------
# Expectations below are worked from the C, not from host.sim.heap: the block is OMV_FB_SIZE (400K) +
# OMV_FB_ALLOC_SIZE (100K up to v4.5.5, 80K after) long (stm32fxxx.ld.S v4.5.5 115-127, common.ld.S
# v4.8.1 172-183); up to v4.7 framebuffer_t's 64 bytes open it (framebuffer.h v4.5.5 25-38, v4.6.0 40-54),
# every buffer has a 32-byte vbuffer_t header and a cache-line aligned size; the stack pointer starts at
# the block's end and fb_avail() = sp - buffers_end - 4 (fb_alloc.c v4.5.5 49-52, v4.8.1 66-70).
H7_TOP_455 = 409_600 + 102_400
H7_TOP = 409_600 + 81_920
STATS_NEED = 4 + (4 * 101 + 4) + 2 * (4 * 256 + 4)  # the mark, then L, A and B float bins, each with its header word


def h7_memory(version, model_stack=0):
    memory = heap.for_board("openmv_h7", version)
    memory.fb_model_bytes = model_stack  # what load_to_fb models (permanent marks) hold on the stack
    return memory


@pytest.mark.parametrize("version, side, count, end", [
    # auto_adjust (framebuffer.c v4.5.5 233-341): raw = min(sp - 64, 400K) = 409,600; 3 buffers of
    # ALIGN_DOWN(min(409,600 / 3 - 32, 200*200*2 + 31)) = 80,000 leave fb_avail() = 512,000 - 64 - 240,096 - 4
    # = 271,836 >= 240,096: triple buffering
    ((4, 5, 5), 200, 3, 64 + 3 * (32 + 80_000)),
    # 240: 3 x 115,232 would leave 166,236 < 345,696, so 2 buffers (281,468 >= 230,464)
    ((4, 5, 5), 240, 2, 64 + 2 * (32 + 115_200)),
    # with 80K of fb_alloc (v4.5.6-v4.5.8) 203 (ALIGN_UP(82,418) = 82,432) is already double:
    # 491,520 - 64 - 3 * 82,464 - 4 = 244,060 < 247,392
    ((4, 5, 6), 203, 2, 64 + 2 * (32 + 82_432)),
    # set_buffers(-1) (framebuffer.c v4.6.0 326-343): min(409,536 // ALIGN_UP(82,418 + 32), 3) = 3
    ((4, 5, 9), 203, 3, 64 + 3 * 82_464),
    ((4, 6, 0), 200, 3, 64 + 3 * 80_032),
    ((4, 7, 0), 240, 3, 64 + 3 * 115_232),
    # resize (framebuffer.c v4.8.1 163-206): 3 x ALIGN_UP(80,000 + 32) <= 409,600 - 2 * 28, no header in the block
    ((4, 8, 1), 200, 3, 3 * 80_032),
    ((4, 8, 0), 240, 3, 3 * 115_232),
])
def test_the_fb_alloc_room_ends_at_the_frame_buffers_the_driver_chose(version, side, count, end):
    """Found in the source audit: fb_alloc is not a fixed 80/100 KB. It is everything between the fb_alloc
    stack pointer and the end of the frame buffers in use, so it depends on the window and the buffering."""
    memory = h7_memory(version)
    top = H7_TOP_455 if version <= (4, 5, 5) else H7_TOP
    frame = memory.frame_for(side)
    assert (frame.count, frame.end) == (count, end)
    assert memory.fb_room(side) == top - end and memory.fb_avail(side) == top - end - 4
    assert memory.fb_room(side) > memory.spec.fb_alloc_bytes  # the old fixed rule was stricter


def test_a_camera_set_up_with_a_load_to_fb_model_on_the_stack_keeps_fewer_buffers_up_to_4_5_8():
    """framebuffer_auto_adjust_buffers (framebuffer.c v4.5.5 lines 326-341) keeps 3 buffers only while
    fb_avail() >= their 240,096 bytes: sp - 64 - 240,096 - 4 >= 240,096, i.e. at most 31,740 bytes held on
    the stack when set_windowing runs; one more and it keeps 2 (160,064 bytes), so fb_alloc gets more room."""
    for stack, count, end in ((31_740, 3, 64 + 3 * 80_032), (31_741, 2, 64 + 2 * 80_032)):
        memory = h7_memory((4, 5, 5), stack)
        frame = memory.configure_frame(200)
        assert (frame.count, frame.end) == (count, end)
        assert memory.fb_room(200) == H7_TOP_455 - stack - end
    assert h7_memory((4, 8, 1), 200_000).configure_frame(200).count == 3  # v4.8 never looks at the stack


def stats_board(memory):
    import types

    return types.SimpleNamespace(memory=memory, check_alive=lambda: None,
                                 clock=types.SimpleNamespace(advance=lambda ms: None))


@pytest.mark.parametrize("version, room", [((4, 8, 1), H7_TOP - 3 * 80_032), ((4, 5, 5), H7_TOP_455 - 64 - 3 * 80_032),
                                            ((4, 6, 0), H7_TOP - 64 - 3 * 80_032)])
def test_get_statistics_fails_one_byte_past_the_room_above_a_200_pixel_windows_buffers(version, room):
    """The presence gate's get_statistics on the 200x200 frame: the mark and its three bin arrays (2,468
    bytes) fit with exactly that much left between the stack and the triple buffers, not one byte less."""
    import numpy as np

    from host.sim.camera import SimImage

    for stack, fits in ((room - STATS_NEED, True), (room - STATS_NEED + 1, False)):
        memory = h7_memory(version, stack)
        img = SimImage(stats_board(memory), np.full((200, 200), 0x7BEF, np.uint16))
        if fits:
            assert img.get_statistics(roi=(0, 0, 24, 24)).l_mean() >= 0
        else:
            with pytest.raises(MemoryError, match=heap.FB_FULL):
                img.get_statistics(roi=(0, 0, 24, 24))


JPEG_SPACE_200_Q90 = 2 * 25 * 192 + 4 * 32  # two rows of 25 8x8 4:4:4 MCUs (192 bytes) + JPEG_ALLOC_PADDING


@pytest.mark.parametrize("version, quality, space", [
    ((4, 8, 1), 90, JPEG_SPACE_200_Q90),
    ((4, 8, 1), 50, 2 * 13 * 256 + 128),  # below 60: 4:2:2, 13 MCUs of 16x8 (256 bytes)
    ((4, 5, 3), 50, JPEG_SPACE_200_Q90),  # before v4.5.4 the JPEG core always ran 4:4:4
])
def test_jpeg_save_raises_exactly_where_jpeg_compress_calls_fb_alloc_fail(version, quality, space):
    """stm_jpeg.c v4.8.1 lines 180-188 (jpeg.c v4.5.5 161-169): after img.save's mark (4 bytes), fb_avail()
    (another 4 short of the pointer) must hold the MCU rows and padding, else fb_alloc_fail()."""
    end = (3 * 80_032) if version >= (4, 8, 0) else 64 + 3 * 80_032
    top = H7_TOP if version >= (4, 5, 6) else H7_TOP_455
    need = space + 4 + 4
    stream = b"\xff\xd8" + bytes(3000) + b"\xff\xd9"
    memory = h7_memory(version, top - end - need)
    assert memory.jpeg_save(200, quality, stream) == b""  # fits, but the buffer is empty: 0 bytes written
    memory.fb_model_bytes += 1
    with pytest.raises(MemoryError, match=heap.FB_FULL):
        memory.jpeg_save(200, quality, stream)


def test_a_jpeg_that_does_not_fit_the_room_left_is_written_truncated_without_an_error():
    """stm_jpeg.c v4.8.1: the 32-byte APP0 slot, then 512-byte chunks while out_len + 512 <= out_max; an
    overflow returns true, which jpeg_write ignores, writing out_max bytes from the buffer's start."""
    end = 3 * 80_032
    base = JPEG_SPACE_200_Q90 + 8 + 32  # mark + fb_avail's word + space + the APP0 slot: out_max starts above this
    stream = b"\xff\xd8" + bytes(range(256)) * 19 + b"\xff\xd9"  # 4,868 bytes: 10 chunks
    assert len(stream) == 4868

    def saved(out_max):
        return h7_memory((4, 8, 1), H7_TOP - end - base - out_max).jpeg_save(200, 90, stream)

    assert saved(5120) is None  # 10 chunks fit: the board writes the whole JPEG
    cut = saved(5119)  # 9 chunks fit: paused, overflow
    assert len(cut) == 5119 and cut[:32] == bytes(32) and cut[32:32 + 4608] == stream[:4608]
    assert cut[32 + 4608:] == bytes(5119 - 32 - 4608)
    assert saved(1024) == bytes(32) + stream[:1024 - 32]  # the smallest buffer the core is started on
    assert saved(1023) == bytes(1023)  # below 2 x 512: overflow before encoding, stale bytes only
    assert h7_memory((4, 8, 1), H7_TOP - end - (base - 32) - 31).jpeg_save(200, 90, stream) == bytes(31)


def test_img_save_writes_what_the_board_writes_a_truncated_file_or_an_empty_one(tmp_path):
    """The capture path end to end: a load_to_fb model leaves too little room for the frame's JPEG, so the
    board writes an unreadable file and carries on; with less room still it raises and leaves the file empty."""
    import io
    import types

    import numpy as np
    from PIL import Image

    from host.sim.camera import SimImage
    from host.sim.storage import Storage

    storage = Storage(sd_dir=tmp_path / "sd", flash_dir=tmp_path / "flash")
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 0x10000, (200, 200), dtype=np.uint16)  # noise: a stream far beyond 2 KB

    def save(stack, name):
        memory = h7_memory((4, 8, 1), stack)
        board = types.SimpleNamespace(memory=memory, check_alive=lambda: None, faults=types.SimpleNamespace(capture=None),
                                      clock=types.SimpleNamespace(advance=lambda ms: None),
                                      costs=types.SimpleNamespace(jpeg_save_ms=0.0), storage=storage)
        SimImage(board, pixels).save("/sdcard/" + name, quality=90)
        return (tmp_path / "sd" / name).read_bytes()

    whole = save(0, "whole.jpg")
    assert Image.open(io.BytesIO(whole)).size == (200, 200)
    room = H7_TOP - 3 * 80_032
    out_max = 2048
    cut = save(room - (JPEG_SPACE_200_Q90 + 8 + 32 + out_max), "cut.jpg")
    assert len(cut) == out_max and cut[:32] == bytes(32) and cut[32:34] == b"\xff\xd8"
    with pytest.raises(MemoryError, match=heap.FB_FULL):
        save(room - JPEG_SPACE_200_Q90 - 7, "none.jpg")
    assert (tmp_path / "sd" / "none.jpg").read_bytes() == b""


BOARD_RANGES = [(board, spec) for board in ("openmv_h7", "openmv_h7_plus", "openmv_rt1062")
                for spec in heap.ranges(load_board(board).data)]


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, len(BOARD_RANGES) - 1), pick=st.integers(0, 10**6), side=st.integers(32, 240),
       model=st.integers(0, 235_520), bins=st.tuples(st.integers(2, 300), st.integers(2, 300), st.integers(2, 300)))
def test_the_fb_room_over_windows_models_and_firmware(which, pick, side, model, bins):
    """For every window the camera takes and any model up to the H7's model budget: without a model the room
    is never negative (and never below the old fixed fb_alloc size); a load_to_fb model takes exactly its
    fb_alloc bytes from it; fb_avail() is the room less the pointer's word; the presence gate's bins fail iff
    they need more than the room; the JPEG raises iff fb_avail() after the mark is below its MCU rows."""
    board, spec = BOARD_RANGES[which]
    lo, hi = spec.first, spec.last
    versions = sorted({lo, hi} | {v for v in [(4, 5, 4), (4, 5, 8), (4, 5, 9), (4, 7, 0), (4, 8, 0)] if lo <= v <= hi})
    version = versions[pick % len(versions)]
    memory = heap.BoardMemory(spec, firmware_bytes=0, version=version)
    empty = memory.fb_room(side)
    assert empty >= 0 and empty >= spec.fb_alloc_bytes
    taken = heap.fb_model_bytes(model, spec.first)
    if taken > empty:
        return  # the board refuses this load_to_fb model (fb_alloc fails): nothing to check
    memory.fb_model_bytes = taken
    room = memory.fb_room(side)
    assert room == empty - taken >= 0
    assert memory.fb_avail(side) == (room - 4 if room >= 8 else 0 if room >= 4 else (room - 4) % 2**32)  # uint32
    need = 4 + sum(4 * n + 4 for n in bins)
    if need > room:
        with pytest.raises(MemoryError, match=heap.FB_FULL):
            memory.check_fb_room([4 * n for n in bins], side)
    else:
        memory.check_fb_room([4 * n for n in bins], side)
    if room < 4:
        with pytest.raises(MemoryError, match=heap.FB_FULL):
            memory.check_fb_mark(side)  # img.save's mark
    elif spec.jpeg_codec == "stm32":
        space = 2 * -(-side // 8) * 192 + 128  # quality 90: 4:4:4 at every firmware
        stream = b"\xff\xd8\xff\xd9"
        if room - 8 < space:
            with pytest.raises(MemoryError, match=heap.FB_FULL):
                memory.jpeg_save(side, 90, stream)
        else:
            buffer = room - 8 - space
            written = memory.jpeg_save(side, 90, stream)
            if buffer < 32:
                assert written == bytes(buffer)
            elif buffer - 32 < 1024:
                assert written == bytes(buffer - 32)
            else:
                assert written is None
