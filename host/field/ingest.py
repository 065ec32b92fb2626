"""Load the SD-card logs of one or many cameras into the analytics database (DuckDB).

    python -m host.ingest SOURCE... [--db tinymask.duckdb] [--export-parquet DIR]

SOURCE is a pulled archive (tools.pull), a mounted SD card, or a single log file. Every complete,
valid record is loaded once: records are keyed by (device_id, boot, seq), so ingesting the same
file again, a file that grew, or the same card from two places never duplicates a row. What is
skipped (damaged lines, truncated last lines, NUL padding, records of an unknown camera) is printed
with file, byte offset and reason, and kept in the `problems` table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from host.errors import UserError, run_cli
from host.field import db
from host.field.columns import ColumnChunk, ColumnParser
from host.field.logread import TICKS_PERIOD, Header, Problem, parse_log

CHUNK_BYTES = 4 << 20
BATCH_ROWS = 200_000
LOG_NAME = re.compile(r"^b(\d+)-p(\d+)\.log$")
ROOT_MARKERS = ("captures", "tinymask_boot.txt", "pull-state.json", "config.json")
SHOWN_PROBLEMS = 5


@dataclass
class LogFile:
    path: Path
    root: Path  # the storage root the file came from: captures/ are found relative to it
    device_hint: str | None = None  # used only when the file has no readable header
    boot_hint: int | None = None
    part_hint: int | None = None


@dataclass
class FileResult:
    path: Path
    status: str  # new, grown, changed, unchanged
    records_read: int = 0
    records_new: int = 0
    problems: int = 0
    shown: list[Problem] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)


@dataclass
class IngestSummary:
    db_path: Path
    files: list[FileResult]
    seconds: float

    @property
    def records_read(self) -> int:
        return sum(f.records_read for f in self.files)

    @property
    def records_new(self) -> int:
        return sum(f.records_new for f in self.files)

    @property
    def problems(self) -> int:
        return sum(f.problems for f in self.files)


# -- finding the logs ------------------------------------------------------------------------------

def find_logs(sources: list[str | Path]) -> list[LogFile]:
    """Every log file under the sources, with its storage root and what its name and folder tell."""
    found: dict[Path, LogFile] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"{source}: no such file or folder; give a pulled archive, a mounted SD card "
                            "or a .log file")
        if path.is_file():
            candidates = [path]
        else:
            candidates = sorted(p for p in path.rglob("*.log")
                                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        for candidate in candidates:
            resolved = candidate.resolve()
            found.setdefault(resolved, _describe(resolved))
    if not found:
        raise UserError(f"{', '.join(map(str, sources))}: no log files (*.log) found; point at the SD card, "
                        "a tools.pull archive or a b000001-p000.log file")
    logs = list(found.values())
    _fill_device_hints(logs)
    return sorted(logs, key=lambda f: (str(f.root), f.boot_hint or 0, f.part_hint or 0, str(f.path)))


def storage_root(log: Path) -> Path:
    """The folder that holds logs/ and captures/ for this log file (the card or the archive's device)."""
    for folder in list(log.parents)[:3]:
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return log.parent.parent if log.parent.name == "logs" else log.parent


def _describe(path: Path) -> LogFile:
    match = LOG_NAME.match(path.name)
    boot, part = (int(match[1]), int(match[2])) if match else (None, None)
    return LogFile(path, storage_root(path), boot_hint=boot, part_hint=part)


def _fill_device_hints(logs: list[LogFile]) -> None:
    """A file without a readable header belongs to the camera of its card or archive folder."""
    devices_by_root: dict[Path, set[str]] = {}
    for log in logs:
        if _first_header(log.path) is None:
            if log.root not in devices_by_root:
                devices_by_root[log.root] = _root_devices(log.root)
            devices = devices_by_root[log.root]
            log.device_hint = next(iter(devices)) if len(devices) == 1 else None


def _first_header(path: Path) -> Header | None:
    with open(path, "rb") as f:
        headers = parse_log(f.read(4096), str(path)).headers
    return headers[0] if headers else None


def _root_devices(root: Path) -> set[str]:
    """Cameras named by the pull state or by any readable log header under a storage root."""
    state = root / "pull-state.json"
    if state.is_file():
        try:
            device = json.loads(state.read_text()).get("device_id")
        except (ValueError, OSError, AttributeError):
            device = None
        if isinstance(device, str) and device:
            return {device}
    devices = set()
    for path in root.rglob("*.log"):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
            header = _first_header(path)
            if header is not None:
                devices.add(header.device_id)
    return devices


# -- loading ---------------------------------------------------------------------------------------

class Loader:
    """Reads log files into the database in batches of about BATCH_ROWS records across files.

    Each batch is one transaction: its records, and the `files`, `headers` and `problems` rows of the
    files read completely so far. An interrupted ingest loses at most the open batch, and the next
    run reads those files again (the key keeps it from adding anything twice).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, announce=lambda result: None):
        self.con = con
        self.announce = announce  # called with each FileResult once its records are committed
        self.known = {row[0]: row[1:] for row in con.execute(
            "SELECT path, size, mtime, consumed, prefix_sha256, device_id, boot, part, records FROM files").fetchall()}
        self.last: dict[tuple[str, int], tuple[int, int, int]] = {}  # (device, boot) -> seq, ticks, uptime
        self.reordered: set[tuple[str, int]] = set()  # boots that got records before existing ones
        self.records: list[pa.Table] = []
        self.record_count = 0
        self.files: list[dict] = []
        self.headers: dict[tuple, list] = {}
        self.problems: list[Problem] = []
        self.waiting: dict[str, FileResult] = {}
        self.con.execute("BEGIN TRANSACTION")

    def ingest_file(self, log: LogFile, progress: tqdm) -> FileResult:
        key = str(log.path)
        stat = log.path.stat()
        start, hasher, status, earlier_records = 0, hashlib.sha256(), "new", 0
        context = (log.device_hint, log.boot_hint, log.part_hint)
        known = self.known.get(key)
        if known:
            size, mtime, consumed, prefix, device, boot, part, records = known
            if size == stat.st_size and mtime == stat.st_mtime:
                progress.update(stat.st_size)
                return FileResult(log.path, "unchanged")
            if stat.st_size >= consumed and _hash_prefix(log.path, consumed, hasher) == prefix:
                start, status, earlier_records = consumed, "grown", records
                context = (device or context[0], boot if boot is not None else context[1],
                           part if part is not None else context[2])
                progress.update(consumed)
            else:
                hasher, status = hashlib.sha256(), "changed"
            self.con.execute('DELETE FROM problems WHERE path = ? AND "offset" >= ?', [key, start])
        result = FileResult(log.path, status)
        self.waiting[key] = result
        parser, consumed = self._read(log, key, start, hasher, context, result, progress)
        self.files.append({
            "path": key, "root": str(log.root), "device_id": parser.device_id, "boot": parser.boot,
            "part": parser.part, "size": stat.st_size, "mtime": stat.st_mtime, "consumed": consumed,
            "prefix_sha256": hasher.hexdigest(), "records": earlier_records + result.records_read})
        return result

    def _read(self, log: LogFile, key: str, start: int, hasher, context, result: FileResult,
              progress: tqdm) -> tuple[ColumnParser, int]:
        parser = ColumnParser(key, *context, offset=start)
        unhashed = b""  # bytes fed to the parser but not yet part of a complete line
        with open(log.path, "rb") as f:
            f.seek(start)
            while chunk := f.read(CHUNK_BYTES):
                before = parser.consumed
                out = parser.feed_table(chunk)
                stream = unhashed + chunk
                used = parser.consumed - before
                hasher.update(stream[:used])
                unhashed = stream[used:]
                self._take(out, key, result)
                progress.update(len(chunk))
                if self.record_count >= BATCH_ROWS:
                    self.flush()
        complete_bytes = parser.consumed  # what the hash covers; a truncated tail is read again next time
        self._take(parser.close_table(), key, result)
        return parser, complete_bytes

    def _take(self, out: ColumnChunk, key: str, result: FileResult) -> None:
        for h in out.headers:
            self.headers[(h.device_id, h.boot, h.part)] = [
                h.device_id, h.boot, h.part, h.format_version, h.model_sha256, h.firmware_version,
                h.omv_firmware, h.board, key]
        problems = list(out.problems)
        table = out.table
        if table.num_rows:
            known = pc.and_(pc.is_valid(table["device_id"]), pc.is_valid(table["boot"]))
            orphans = table.num_rows - pc.sum(known).as_py()
            if orphans:
                first = pc.min(pc.filter(table["offset"], pc.invert(known))).as_py()
                problems.append(Problem(key, first, f"{orphans} records skipped: no readable header and the "
                                        "camera or boot cannot be told from the folder or file name"))
                table = table.filter(known)
            if table.num_rows:
                self.records.append(table.append_column("file", pa.repeat(pa.scalar(key), table.num_rows)))
                self.record_count += table.num_rows
                result.records_read += table.num_rows
        result.problems += len(problems)
        for problem in problems:
            result.reasons[_reason_kind(problem.reason)] += 1
            if len(result.shown) < SHOWN_PROBLEMS:
                result.shown.append(problem)
        self.problems += problems

    def flush(self) -> None:
        """Write the batch and commit it; announce the files it completed."""
        if self.records:
            table = pa.concat_tables(self.records)
            self.records, self.record_count = [], 0
            groups = table.group_by(["device_id", "boot"]).aggregate([]).to_pylist()
            for group in groups:
                part = table if len(groups) == 1 else table.filter(pc.and_(
                    pc.equal(table["device_id"], group["device_id"]), pc.equal(table["boot"], group["boot"])))
                self._insert_boot(part, group["device_id"], group["boot"])
        if self.headers:
            _run_with(self.con, pa.table(list(zip(*self.headers.values())), names=[
                "device_id", "boot", "part", "format_version", "model_sha256", "firmware_version",
                "omv_firmware", "board", "path"]), "INSERT OR REPLACE INTO headers SELECT * FROM incoming")
            self.headers = {}
        if self.problems:
            _run_with(self.con, pa.table({"path": [p.source for p in self.problems],
                                          "offset": [p.offset for p in self.problems],
                                          "reason": [p.reason for p in self.problems]}),
                      "INSERT INTO problems SELECT * FROM incoming")
            self.problems = []
        if self.files:
            files = pa.Table.from_pylist(self.files)
            _run_with(self.con, files, """
                INSERT OR REPLACE INTO files
                SELECT i.*, (SELECT count(*) FROM problems p WHERE p.path = i.path), now() FROM incoming i""")
            done = [f["path"] for f in self.files]
            self.files = []
            for path in done:
                self.announce(self.waiting.pop(path))
        self.con.execute("COMMIT")
        self.con.execute("BEGIN TRANSACTION")

    def close(self) -> None:
        self.flush()
        self.fix_reordered_boots()
        self.con.execute("COMMIT")

    def _insert_boot(self, table: pa.Table, device: str, boot: int) -> None:
        seq = table["seq"].to_numpy()
        if np.any(seq[1:] <= seq[:-1]):  # out of order, or one record read twice: sort, keep the first
            order = np.lexsort((table["offset"].to_numpy(), seq))
            table, seq = table.take(order), seq[order]
            first = np.ones(len(seq), dtype=bool)
            first[1:] = seq[1:] != seq[:-1]
            table, seq = table.filter(pa.array(first)), seq[first]
        lo, hi = int(seq[0]), int(seq[-1])
        existing, newest = db.one(
            self.con,
            "SELECT count(*) FILTER (WHERE seq BETWEEN ? AND ?), max(seq) FROM records "
            "WHERE device_id = ? AND boot = ?", [lo, hi, device, boot])
        if newest is not None and newest > hi:
            self.reordered.add((device, boot))
        uptime = self._unwrap(device, boot, seq, table["ticks_ms"].to_numpy())
        rows = pa.table({name: pa.array(uptime) if name == "uptime_ms" else table[name]
                         for name in db.RECORD_COLUMNS})
        if existing == 0:
            _run_with(self.con, rows, "INSERT INTO records SELECT * FROM incoming")
            new_by_file = pc.value_counts(rows["file"]).to_pylist()
            counts = {item["values"]: item["counts"] for item in new_by_file}
        else:
            self.con.register("incoming", rows)
            try:
                counts = Counter(path for (path,) in self.con.execute(
                    "INSERT INTO records SELECT b.* FROM incoming b WHERE NOT EXISTS (SELECT 1 FROM records r "
                    "WHERE r.device_id = ? AND r.boot = ? AND r.seq BETWEEN ? AND ? AND r.seq = b.seq) "
                    "RETURNING file", [device, boot, lo, hi]).fetchall())
            finally:
                self.con.unregister("incoming")
        for path, count in counts.items():
            if path in self.waiting:
                self.waiting[path].records_new += count

    def _unwrap(self, device: str, boot: int, seq: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        """uptime_ms: ticks_ms unwrapped in seq order, carried on from the record before this batch."""
        last = self.last.get((device, boot))
        if last is None or last[0] >= seq[0]:
            last = db.one(
                self.con,
                "SELECT seq, ticks_ms, uptime_ms FROM records WHERE device_id = ? AND boot = ? AND seq < ? "
                "AND uptime_ms IS NOT NULL ORDER BY seq DESC LIMIT 1", [device, boot, int(seq[0])])
        first = int(ticks[0]) if last is None else last[2] + (int(ticks[0]) - last[1]) % TICKS_PERIOD
        uptime = np.empty(len(ticks), dtype=np.int64)
        uptime[0] = first
        np.cumsum(np.diff(ticks) % TICKS_PERIOD, out=uptime[1:])
        uptime[1:] += first
        previous = self.last.get((device, boot))
        if previous is None or previous[0] < seq[-1]:
            self.last[(device, boot)] = (int(seq[-1]), int(ticks[-1]), int(uptime[-1]))
        return uptime

    def fix_reordered_boots(self) -> None:
        """Records that arrived before ones already stored: unwrap the whole boot again in SQL."""
        for device, boot in sorted(self.reordered):
            self.con.execute(f"""
                UPDATE records SET uptime_ms = fixed.uptime_ms FROM (
                    SELECT seq, first_value(ticks_ms) OVER w
                        + sum(coalesce((ticks_ms - previous + {TICKS_PERIOD}) % {TICKS_PERIOD}, 0)) OVER w
                        AS uptime_ms
                    FROM (SELECT seq, ticks_ms, lag(ticks_ms) OVER (ORDER BY seq) AS previous
                          FROM records WHERE device_id = $1 AND boot = $2)
                    WINDOW w AS (ORDER BY seq ROWS UNBOUNDED PRECEDING)
                ) AS fixed
                WHERE records.device_id = $1 AND records.boot = $2 AND records.seq = fixed.seq""",
                [device, boot])
        self.reordered.clear()


def _run_with(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str, params=None) -> int:
    """Run `sql` with the Arrow `table` visible as `incoming`; the number of rows it wrote."""
    con.register("incoming", table)
    try:
        return db.one(con, sql, params)[0]
    finally:
        con.unregister("incoming")


def _hash_prefix(path: Path, length: int, hasher) -> str:
    with open(path, "rb") as f:
        remaining = length
        while remaining > 0:
            block = f.read(min(CHUNK_BYTES, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
    return hasher.copy().hexdigest()


def _reason_kind(reason: str) -> str:
    """A problem's reason without its particulars, for the per-file tally."""
    text = re.sub(r"\(.*?\)|'.*?'|\d+", "", reason)
    return re.sub(r"\s+", " ", text).strip(" ,:")


# -- the command -----------------------------------------------------------------------------------

def ingest(sources: list[str | Path], db_path: Path | str = db.DEFAULT_DB, progress: bool | None = None,
           echo=print) -> IngestSummary:
    started = time.perf_counter()
    logs = find_logs(sources)
    con = db.connect(db_path)
    try:
        total = sum(log.path.stat().st_size for log in logs)
        results = []
        with tqdm(total=total, unit="B", unit_scale=True, desc="ingesting", disable=_no_bar(progress),
                  file=sys.stderr) as bar:
            def announce(result: FileResult) -> None:
                for line in describe_result(result):
                    if echo is print:
                        bar.write(line, file=sys.stdout)
                    else:
                        echo(line)

            loader = Loader(con, announce)
            try:
                for log in logs:
                    results.append(loader.ingest_file(log, bar))
                loader.close()
            except BaseException:
                con.execute("ROLLBACK")
                raise
    finally:
        con.close()
    return IngestSummary(Path(db_path), results, time.perf_counter() - started)


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def describe_result(result: FileResult) -> list[str]:
    """What the user needs to read about one file: only files that had something skipped, or a status."""
    if result.status == "unchanged" or (not result.problems and result.status == "new"):
        return []
    lines = [f"{result.path}: {result.status}, {result.records_new} new records"
             + (f", {result.problems} skipped:" if result.problems else "")]
    for problem in result.shown:
        lines.append(f"  byte {problem.offset}: {problem.reason}")
    if result.problems > len(result.shown):
        tally = ", ".join(f"{n} x {kind}" for kind, n in result.reasons.most_common(4))
        lines.append(f"  ... {result.problems - len(result.shown)} more ({tally}); all in the `problems` table")
    return lines


def describe_summary(summary: IngestSummary) -> str:
    counts = Counter(f.status for f in summary.files)
    files = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    rate = summary.records_read / summary.seconds if summary.seconds else 0.0
    return (f"ingested {len(summary.files)} log files ({files}) into {summary.db_path}: "
            f"{summary.records_new} new records, {summary.records_read - summary.records_new} already there, "
            f"{summary.problems} lines or byte runs skipped; {summary.seconds:.1f} s, {rate:,.0f} records/s")


def export_parquet(db_path: Path | str, out_dir: Path | str) -> Path:
    """records as Parquet, partitioned by device and day: DIR/records/device_id=.../day=.../*.parquet.

    The camera has no trustworthy clock, so `day` is the day since boot: 'b000012-d000' is the first
    24 hours of boot 12. Headers (model, firmware per boot) go to DIR/headers.parquet.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = db.connect(db_path, create=False)
    try:
        con.execute(f"""
            COPY (SELECT *, printf('b%06d-d%03d', boot, coalesce(uptime_ms, 0) // 86400000) AS day
                  FROM records ORDER BY device_id, boot, seq)
            TO '{_sql_path(out_dir / "records")}'
            (FORMAT parquet, PARTITION_BY (device_id, day), OVERWRITE_OR_IGNORE true)""")
        con.execute(f"COPY headers TO '{_sql_path(out_dir / 'headers.parquet')}' (FORMAT parquet)")
    finally:
        con.close()
    return out_dir


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m host.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="pulled archive, mounted SD card, or a single log file (several allowed)")
    p.add_argument("--db", type=Path, default=db.DEFAULT_DB, help=f"database file (default {db.DEFAULT_DB})")
    p.add_argument("--export-parquet", type=Path, metavar="DIR",
                   help="also write all records as Parquet partitioned by device and day into DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = ingest(args.sources, args.db, progress=False if args.no_progress else None)
    print(describe_summary(summary))
    if args.export_parquet:
        out = export_parquet(args.db, args.export_parquet)
        print(f"exported records to {out / 'records'} (Parquet, partitioned by device_id and day)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
