"""Run the real firmware/main.py on a simulated OpenMV Cam over a folder of frames.

    python -m host.simulate --frames DIR [--bundle models/tinymask] [--sd OUT] [--frames-count N]
        [--config key=value ...] [--firmware-version 4.6.0] [--camera-api sensor|csi]
        [--no-sd] [--fault camera@20 ...]

The bundle is deployed onto the simulated card (OUT) as tools.deploy would, the firmware runs for N
frames against fake camera / ml / tf / pins / watchdog modules backed by the real TFLite Micro
interpreter, and OUT is left as the card would hold it: logs/, captures/, tinymask_boot.txt and the
deployed files. Running again on the same OUT is the next boot of the same camera.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

from tqdm import tqdm

from host.errors import UserError, run_cli
from host.field.logread import parse_log
from host.sim import Faults, SimOptions, SimResult, list_frames, simulate
from host.sim.bundle import firmware_module, parse_overrides
from tools.payload import DEFAULT_BUNDLE, FIRMWARE_FORMATS


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m host.simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", required=True, type=Path,
                   help="image files (sorted by name), or a folder of class folders (with_mask/, without_mask/)")
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="model bundle (default: models/tinymask)")
    p.add_argument("--sd", type=Path, help="folder that plays the SD card (default: a temporary folder)")
    p.add_argument("--flash", type=Path, help="folder that plays the internal flash (default: temporary)")
    p.add_argument("--frames-count", type=int, help="snapshots to run (default: every frame once; loops if more)")
    p.add_argument("--config", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config.json override, e.g. --config debounce_frames=3 (repeatable)")
    p.add_argument("--firmware-version", default="4.6.0",
                   help="OpenMV firmware to simulate: <4.5.6 uses tf, >=4.5.6 ml; <4.6 one '/' filesystem; "
                        ">=4.8 the csi.CSI camera class (default 4.6.0)")
    p.add_argument("--camera-api", choices=("sensor", "csi"),
                   help="camera API the board offers (default: csi from 4.8.0, else sensor)")
    p.add_argument("--firmware-format", choices=FIRMWARE_FORMATS, default="auto",
                   help="the firmware on the card as tools.deploy ships it: auto (default: .mpy when this firmware "
                        "imports them), mpy or py")
    p.add_argument("--board", default="openmv_h7", help="board profile for costs and pins (default openmv_h7)")
    p.add_argument("--no-sd", action="store_true", help="no card inserted (same as --fault no-sd)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault: no-sd, missing-model, corrupt-model, camera-init, camera@N[-M], "
                        "inference@N[-M], capture@N[-M], sd-full@BYTES, hang@N (repeatable)")
    p.add_argument("--start-ticks", type=int, default=0, help="ticks_ms at boot (test wrap-around near 2**30)")
    p.add_argument("--max-boots", type=int, default=3, help="stop after this many (watchdog) boots")
    p.add_argument("--echo", action="store_true", help="print the firmware's console output as it runs")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    faults = Faults.parse(args.fault + (["no-sd"] if args.no_sd else []))
    if args.max_boots < 1:
        raise UserError(f"--max-boots {args.max_boots}: at least 1 (the first boot)")
    if args.frames_count is not None and args.frames_count < 1:
        raise UserError(f"--frames-count {args.frames_count}: at least 1 (leave it out to run every frame once)")
    for flag, folder in (("--sd", args.sd), ("--flash", args.flash)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise UserError(f"{flag} {folder} is a file; pass a folder to play the {'SD card' if flag == '--sd' else 'flash'}")
        if folder is not None and folder.resolve() == Path(args.bundle).resolve():
            raise UserError(f"{flag} {folder} is the bundle folder; pass another folder to play the card")
    frames = list_frames(args.frames)
    count = len(frames) if args.frames_count is None else args.frames_count
    bar = tqdm(total=count, unit="frame", desc="simulating", disable=args.echo or not sys.stderr.isatty())
    options = SimOptions(
        frames=frames, bundle=args.bundle, sd_dir=args.sd, flash_dir=args.flash, frames_count=count,
        firmware_version=args.firmware_version, camera_api=args.camera_api, config=parse_overrides(args.config),
        faults=faults, board=args.board, start_ticks_ms=args.start_ticks, max_boots=args.max_boots,
        echo=args.echo, firmware_format=args.firmware_format, progress=lambda index: bar.update(1))
    try:
        result = simulate(options)
    finally:
        bar.close()
    print(summary(result, args, frames))
    return 1 if result.exit.startswith("crash") else 0


def summary(result: SimResult, args, frames) -> str:
    lines = [f"simulated {args.board}, OpenMV firmware {args.firmware_version}: {result.frames} frames, "
             f"{result.boots} boot(s), ended by: {result.exit}"]
    lines.append(f"simulator: {result.wall_s:.2f} s wall, {result.wall_fps:.1f} frames/s through firmware/main.py")
    frame_ms = [r.frame_ms for r in _records(result) if r.kind == "F" and r.frame_ms is not None]
    if frame_ms:
        median = statistics.median(frame_ms)
        lines.append(f"board loop (simulated clock, board profile costs): {median:.0f} ms/frame median, "
                     f"{1000.0 / median:.1f} FPS")
    lines.append(f"door: {result.door_openings()} opening(s), relay {'ON' if result.relay_on() else 'off'} at the end")
    counts = collections.Counter(event for event, _ in result.events())
    lines.append("events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for event, detail in result.errors()[:5]:
        lines.append(f"  {event}: {detail}")
    hits, judged = accuracy(result, frames)
    if judged:
        unlabelled = sum(1 for f in frames if f.label is None)
        lines.append(f"accuracy vs folder labels: {100.0 * hits / judged:.1f}% of {judged} frames"
                     + (f" ({unlabelled} of the {len(frames)} frame files are not in a class folder: not judged)"
                        if unlabelled else ""))
    if result.sd_dir is not None:
        logs = result.log_files()
        captures = list((result.sd_dir / result.config["capture_dir"]).rglob("*.jpg"))
        size = sum(p.stat().st_size for p in logs)
        lines.append(f"card {result.sd_dir}: {len(logs)} log file(s) ({size} bytes), {len(captures)} capture(s)")
    elif args.sd is None and not args.no_sd:
        lines.append("card: temporary (pass --sd OUT to keep it)")
    return "\n".join(lines)


def accuracy(result: SimResult, frames) -> tuple[int, int]:
    """(frames whose label the firmware would log equals the folder label, frames with a folder label),
    judged by firmware/infer.py's own rule."""
    truth = {f.path: f.label for f in frames}
    model = firmware_module("infer").Model(result.config)
    hits = judged = 0
    for prediction in result.predictions:
        label = truth.get(prediction.path)
        if label:
            model.judge(prediction.outputs)
            hits += model.label == label
            judged += 1
    return hits, judged


def _records(result: SimResult):
    records = []
    for path in result.log_files():
        records.extend(parse_log(path.read_bytes(), str(path)).records)
    return records


if __name__ == "__main__":
    sys.exit(run_cli(main))
