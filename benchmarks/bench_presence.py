"""Issue 16: how often does the door open when nobody is there, and what does the gate cost?

    python benchmarks/bench_presence.py [--bundle models/tinymask] [--frames 10000] [--no-sim]

1. A long simulated run of negatives only: the real firmware/main.py on the simulated board,
   the scenes-negative test split shuffled, each picture held for 1-20 frames (someone's coat, a
   wall, a covered lens, staying a while), at least --frames frames, with the presence gate on
   and off. Prints door openings and the share of frames logged `none`.
2. Admission on the host (host/gate.py: firmware/presence.py, infer.py and door.py deciding on the
   window's pixels and the model's outputs, as on the board): no-face frames of scenes-negative
   test treated as masked, and masked / unmasked face images of facemask-v1 and facemask-extra
   test admitted as masked, as close-ups and at door framing (40-70% of the window in a real
   scene), each with and without the gate.
   Then the pictures the door logic admits (at most --still-pictures), each held --still-seconds
   (a coat on a hook, a poster), with the firmware's still rule (presence_still_ms) and without.
3. The gate's added cost per frame (pixels examined x the simulator's per-pixel estimate, plus
   per-call overhead) and the estimated loop FPS with it.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import gate, preprocess  # noqa: E402
from host.boards import load_board  # noqa: E402
from host.errors import positive_int, run_script  # noqa: E402
from host.framing import door_frame, manifest_paths, real_test_scenes  # noqa: E402
from host.make import nobody  # noqa: E402
from host.sim.bundle import load, render  # noqa: E402
from host.tflm import Int8Model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def window_and_outputs(model: Int8Model, path: Path) -> tuple[np.ndarray, np.ndarray]:
    window = preprocess.camera_window_rgb565(open_rgb(path))
    return window, outputs_of(model, window)


def outputs_of(model: Int8Model, window: np.ndarray) -> np.ndarray:
    pixels = preprocess.window_pixels(window, model.input_size)
    return model.dequantized(preprocess.to_int8_input(pixels))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "tinymask")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--frames", type=positive_int, default=10_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--no-sim", action="store_true", help="skip the long simulated runs")
    parser.add_argument("--still-pictures", type=int, default=3, help="admitted pictures held still (0: skip)")
    parser.add_argument("--still-seconds", type=float, default=60.0, help="how long each is held")
    parser.add_argument("--board", default="openmv_h7")
    args = parser.parse_args(argv)

    bundle = load(args.bundle, args.board)
    config = render(bundle, args.board, {})
    print(f"bundle {args.bundle}: labels {config['labels']} ({config['output_kind']}), none_label "
          f"{config['none_label']!r}, door threshold {config['threshold']}, debounce {config['debounce_frames']}")
    print("gate: " + json.dumps({k: v for k, v in config.items() if k.startswith("presence_")}))
    negatives = manifest_paths(args.data / "scenes-negative", "test")

    if not args.no_sim:
        print(f"\n1. simulated board, negatives only: at least {args.frames} frames from {len(negatives)}"
              " scenes-negative test pictures, each held 1-20 frames")
        for gate_on in (True, False):
            r = nobody.long_run(args.bundle, negatives, args.frames, args.seed, gate_on, args.board)
            print(f"   gate {'on ' if gate_on else 'off'}: door openings {r['openings']} over {r['frames']} frames "
                  f"(door open {100 * r['open_share']:.1f}% of the time; {r['wall_s']:.0f} s wall)")

    model = Int8Model(bundle.model)
    if not args.no_sim and args.still_pictures > 0:
        judge = gate.DoorJudge(config)
        admitted = [p for p in negatives if judge.masked(*window_and_outputs(model, p))][:args.still_pictures]
        fps = nobody.gate_cost(config, load_board(args.board), int(bundle.card.get("macs") or 0),
                               model.input_size)["fps_with"]
        each = int(args.still_seconds * fps)
        print(f"   {len(admitted)} admitted pictures, each held {args.still_seconds:.0f} s ({each} frames at"
              f" {fps:.1f} FPS): {', '.join(p.name for p in admitted)}")
        for still_ms in (config["presence_still_ms"], 0):
            r = nobody.still_run(args.bundle, admitted, each, still_ms, args.board)
            print(f"   still rule {'off' if still_ms == 0 else f'{still_ms} ms'}: door openings {r['openings']} over"
                  f" {r['frames']} frames, {r['sim_s']:.0f} s (door open {100 * r['open_share']:.1f}% of the time;"
                  f" {r['wall_s']:.0f} s wall)")
    rng = np.random.default_rng(args.seed)
    scenes = [open_rgb(p) for p in real_test_scenes(args.data / "scenes-negative")]
    print("\n2. admitted as masked by the door logic (host/gate.py), with / without the gate")

    def line(name, windows):
        outs = [outputs_of(model, w) for w in windows]
        a = gate.admission(windows, outs, config)
        n = a["frames"]
        print(f"   {name:<44} {100 * a['admitted_with_gate'] / n:6.2f}% / {100 * a['admitted_without_gate'] / n:6.2f}%"
              f"   ({a['admitted_with_gate']} / {a['admitted_without_gate']} of {n})")

    line("scenes-negative test (no face)", [preprocess.camera_window_rgb565(open_rgb(p)) for p in negatives])
    for set_name in ("facemask-v1", "facemask-extra"):
        for label in ("with_mask", "without_mask"):
            faces = [open_rgb(p) for p in manifest_paths(args.data / set_name, "test", label)]
            line(f"{set_name} {label}, close-up", [preprocess.camera_window_rgb565(f) for f in faces])
            line(f"{set_name} {label}, door framing 40-70%",
                 [door_frame(f, scenes[int(rng.integers(len(scenes)))], float(rng.uniform(0.4, 0.7)), rng)
                  for f in faces])

    board = load_board(args.board)
    cost = nobody.gate_cost(config, board, int(bundle.card.get("macs") or 0), model.input_size)
    print(f"\n3. gate cost: {cost['calls']} get_statistics calls, {cost['pixels']} pixels per frame: {cost['gate_ms']:.2f} ms"
          f" estimated on the H7")
    print(f"   loop {cost['fps_without']:.1f} FPS without the gate, {cost['fps_with']:.1f} FPS with it")
    started = time.perf_counter()
    host_gate = gate.HostGate(config)
    window = preprocess.camera_window_rgb565(scenes[0])
    for _ in range(50):
        host_gate.reason(window)
    print(f"   host gate (numpy imlib emulation): {1000 * (time.perf_counter() - started) / 50:.1f} ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
