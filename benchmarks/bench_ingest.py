"""Benchmark: one camera logging every frame at 30 FPS for 24 hours, ingested and reported; and a
camera in a watchdog reboot loop (thousands of one-boot files).

    .venv/bin/python benchmarks/bench_ingest.py [--hours 24] [--fps 30] [--boots 1000,3000,10000]
                                                [--work /tmp/tinymask-bench]

1. writes the card (logs rotated at the firmware's default 1 MiB, with host.field.logread's writers;
   cached in --work so a re-run skips it),
2. ingests a quarter of the files and then all of them into fresh databases, each in its own
   process, and prints records/s and peak RSS of both (memory must not grow with the records),
3. builds the report from the full database and prints its time and peak RSS.
4. for each --boots N: N one-boot files (a boot event and one frame each, 2N records) ingested into a
   fresh database; the time must grow linearly with N (issue 12: 10,000 files in <= 10 s).
The target (issue 5): ingest + report of ~2.6 million records in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host.errors import UserError, positive_float, positive_int, run_script  # noqa: E402
from host.field.logread import boot_id_for, format_event, format_frame, format_header  # noqa: E402

LOG_MAX_BYTES = 1 << 20


def generate(card: Path, hours: float, fps: int, seed: int = 7) -> int:
    """A 30 FPS day on one card: frames, door events, a capture every 300 frames; returns records."""
    rng = random.Random(seed)
    logs = card / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    (card / "tinymask_boot.txt").write_text("1")
    frames = int(hours * 3600 * fps)
    step = 1000 / fps
    scores = [round(rng.random(), 4) for _ in range(4096)]
    part, size, lines, seq = 0, 0, [], 0
    header = format_header("bench-cam", 1, part, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7",
                           boot_id=boot_id_for("bench-cam", 1))
    lines, size = [header], len(header)
    records = 0

    def add(line: str) -> None:
        nonlocal part, size, lines
        if size + len(line) > LOG_MAX_BYTES:
            (logs / f"b000001-p{part:03d}.log").write_text("".join(lines))
            part += 1
            head = format_header("bench-cam", 1, part, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7",
                                 boot_id=boot_id_for("bench-cam", 1))
            lines, size = [head], len(head)
        lines.append(line)
        size += len(line)

    add(format_event(0, 0, "boot", "reset=normal"))
    seq, records = 1, 1
    for i in range(frames):
        ticks = int(i * step)
        score = scores[i % len(scores)]
        label = "with_mask" if score >= 0.5 else "without_mask"
        if i % 900 == 0 and i:
            add(format_event(seq, ticks, "door_open", "mask"))
            seq, records = seq + 1, records + 1
        image = f"captures/{label}/b000001-s{seq:06d}.jpg" if i % 300 == 0 else None
        add(format_frame(seq, ticks, label, score, 14 + (i & 3), 33, "closed", image))
        seq, records = seq + 1, records + 1
    (logs / f"b000001-p{part:03d}.log").write_text("".join(lines))
    return records


def generate_boots(card: Path, boots: int) -> int:
    """A reboot loop: `boots` files, each one boot with its boot event and a single frame."""
    logs = card / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    for boot in range(1, boots + 1):
        (logs / f"b{boot:06d}-p000.log").write_text(
            format_header("loop-cam", boot, 0, "ab" * 32, "0.2.0", "4.6.0", "openmv_h7",
                          boot_id=boot_id_for("loop-cam", boot))
            + format_event(0, 2000, "boot", "reset=watchdog")
            + format_frame(1, 2040, "without_mask", 0.1234, 14, 33, "closed"))
    (card / "tinymask_boot.txt").write_text(str(boots))
    return 2 * boots


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_ingest(sources: list[str], db_path: str) -> dict:
    from host.field.ingest import ingest

    started = time.perf_counter()
    summary = ingest(sources, db_path, progress=False, echo=lambda line: None)
    seconds = time.perf_counter() - started
    return {"records": summary.records_new, "seconds": seconds, "records_per_s": summary.records_new / seconds,
            "peak_rss_mb": peak_rss_mb(), "files": len(summary.files)}


def phase_report(db_path: str, out: str) -> dict:
    from host.field.report.cli import build_report

    started = time.perf_counter()
    report = build_report(Path(db_path), Path(out), bundle_dir=None, host_check=False, echo=lambda line: None)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(),
            "frames": report["summary"]["frames"]}


def child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"benchmark phase {args[:2]} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=positive_float, default=24)
    p.add_argument("--fps", type=positive_int, default=30)
    p.add_argument("--work", type=Path, default=Path("/tmp/tinymask-bench"))
    p.add_argument("--boots", default="1000,3000,10000",
                   help="one-boot file counts for the reboot-loop benchmark (comma-separated; '' skips it)")
    p.add_argument("--skip-day", action="store_true", help="only the reboot-loop benchmark")
    p.add_argument("--phase", choices=("ingest", "report"), help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("sources", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase == "ingest":
        print(json.dumps(phase_ingest(args.sources, args.db)))
        return
    if args.phase == "report":
        print(json.dumps(phase_report(args.db, args.out)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    counts = [x.strip() for x in args.boots.split(",") if x.strip()]
    if not all(x.isdigit() and int(x) > 0 for x in counts):
        raise UserError(f"--boots {args.boots!r}: comma-separated file counts above 0, e.g. 1000,3000 ('' skips it)")
    for n in map(int, counts):
        loop = args.work / f"loop-{n}"
        generate_boots(loop, n)
        database = args.work / f"loop-{n}.duckdb"
        if database.exists():
            database.unlink()
        result = child("--phase", "ingest", "--db", str(database), str(loop))
        print(f"reboot loop: {n:>6,} one-boot files ({result['records']:,} records) in {result['seconds']:5.1f} s "
              f"= {1000 * result['seconds'] / n:.2f} ms per boot (target: 10,000 in <= 10 s)")
    if args.skip_day:
        return
    card = args.work / f"card-{args.hours:g}h-{args.fps}fps"
    marker = card / "records.txt"
    if marker.is_file():
        records = int(marker.read_text())
        print(f"card: {card} (cached, {records:,} records)")
    else:
        started = time.perf_counter()
        records = generate(card, args.hours, args.fps)
        marker.write_text(str(records))
        print(f"card: {card}: {records:,} records written in {time.perf_counter() - started:.1f} s")
    files = sorted((card / "logs").glob("*.log"))
    size = sum(f.stat().st_size for f in files)
    print(f"      {len(files)} log files, {size / 1e6:.1f} MB")

    for db in args.work.glob("*.duckdb*"):
        db.unlink()
    quarter = child("--phase", "ingest", "--db", str(args.work / "quarter.duckdb"),
                    *map(str, files[: max(1, len(files) // 4)]))
    print(f"ingest 1/4: {quarter['records']:>10,} records in {quarter['seconds']:6.1f} s = "
          f"{quarter['records_per_s']:>9,.0f} records/s, peak RSS {quarter['peak_rss_mb']:.0f} MB")
    full = child("--phase", "ingest", "--db", str(args.work / "full.duckdb"), str(card))
    print(f"ingest all: {full['records']:>10,} records in {full['seconds']:6.1f} s = "
          f"{full['records_per_s']:>9,.0f} records/s, peak RSS {full['peak_rss_mb']:.0f} MB")
    report = child("--phase", "report", "--db", str(args.work / "full.duckdb"), "--out", str(args.work / "report"))
    print(f"report:     {report['frames']:>10,} frames  in {report['seconds']:6.1f} s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB -> {args.work / 'report' / 'report.html'}")
    total = full["seconds"] + report["seconds"]
    print(f"total ingest + report: {total:.1f} s (target < 60 s); RSS full/quarter: "
          f"{full['peak_rss_mb'] / quarter['peak_rss_mb']:.2f}x for 4x the records")


if __name__ == "__main__":
    sys.exit(run_script(main))
