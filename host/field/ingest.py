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
import os
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

from host.errors import UserError, output_folder, run_cli
from host.field import db
from host.field.columns import ColumnChunk, ColumnParser, empty_table, records_to_table
from host.field.logread import TICKS_PERIOD, Header, ParsedLog, Problem, Record, parse_log, ticks_diff

CHUNK_BYTES = 4 << 20
SMALL_FILE_BYTES = 32 << 10  # below this the line-by-line reader is faster than the column path's setup
HEAD_BYTES = 4096  # read from every file up front: its header, and a hash that sees a rewrite
NO_BOOT_ID = "-"  # version-1 logs, and headerless files whose run cannot be told
BATCH_ROWS = 200_000
LOG_NAME = re.compile(r"^b(\d+)-p(\d+)\.log$")
ROOT_MARKERS = ("captures", "tinymask_boot.txt", "pull-state.json", "config.json")
SHOWN_PROBLEMS = 5


FILES_SCHEMA = pa.schema([
    ("path", pa.string()), ("root", pa.string()), ("device_id", pa.string()), ("boot", pa.int64()),
    ("boot_id", pa.string()), ("part", pa.int64()), ("size", pa.int64()), ("mtime", pa.float64()),
    ("head_sha256", pa.string()), ("consumed", pa.int64()), ("prefix_sha256", pa.string()),
    ("records", pa.int64()), ("status", pa.string())])
CONFIG_SCHEMA = pa.schema([
    ("root", pa.string()), ("device_id", pa.string()), ("threshold", pa.float64()), ("labels", pa.string()),
    ("positive_label", pa.string()), ("model_sha256", pa.string()), ("problem", pa.string())])


@dataclass
class LogFile:
    path: Path
    root: Path  # the storage root the file came from: captures/ are found relative to it
    device_hint: str | None = None  # used only when the file has no readable header
    boot_hint: int | None = None
    part_hint: int | None = None
    boot_id_hint: str | None = None
    key: str = ""  # the path as the database stores it
    header: Header | None = None
    head_sha256: str | None = None
    unreadable: str | None = None  # why the file cannot be read


@dataclass
class FileResult:
    path: Path
    status: str  # new, grown, changed, unchanged, unreadable
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

def path_key(path: Path) -> str:
    """The path as stored in the database: a file name that is not UTF-8 keeps its other characters."""
    return os.fsencode(str(path)).decode("utf-8", "replace")


def find_logs(sources: list[str | Path]) -> list[LogFile]:
    """Every log file under the sources, with its storage root and what its header, name and folder tell."""
    found: dict[Path, LogFile] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"{path_key(Path(source))}: no such file or folder; give a pulled archive, a mounted "
                            "SD card or a .log file")
        if path.is_file():
            candidates = [path]
        else:
            candidates = sorted(p for p in path.rglob("*.log")
                                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        top = path.resolve()
        for candidate in candidates:
            resolved = candidate.resolve()
            if path.is_dir() and not resolved.is_relative_to(top):  # a link on the card: its root would be elsewhere
                print(f"warning: {path_key(candidate)}: leads outside {path_key(path)} ({path_key(resolved)}); "
                      "not read", file=sys.stderr)
                continue
            if resolved not in found:
                found[resolved] = _describe(resolved)
    if not found:
        links = [p for s in sources if Path(s).is_dir() for p in sorted(Path(s).rglob("*")) if p.is_symlink() and p.is_dir()]
        hint = f" ({path_key(links[0])} is a link to a folder, not followed: give it directly)" if links else ""
        raise UserError(f"{', '.join(path_key(Path(s)) for s in sources)}: no log files (*.log) found{hint}; point at "
                        "the SD card, a tools.pull archive or a b000001-p000.log file")
    logs = list(found.values())
    _fill_hints(logs)
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
    log = LogFile(path, storage_root(path), boot_hint=boot, part_hint=part, key=path_key(path))
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        log.unreadable = exc.strerror or str(exc)
        return log
    log.head_sha256 = hashlib.sha256(head).hexdigest()
    headers = parse_log(head, log.key).headers
    log.header = headers[0] if headers else None
    return log


def _fill_hints(logs: list[LogFile]) -> None:
    """A file without a readable header belongs to the run of its sibling parts (same card, same boot
    number, one run among them), else to the camera of its card or archive folder."""
    runs: dict[tuple[Path, int], set[tuple[str, str]]] = {}
    devices: dict[Path, set[str]] = {}
    for log in logs:
        if log.header is not None:
            devices.setdefault(log.root, set()).add(log.header.device_id)
            runs.setdefault((log.root, log.header.boot), set()).add((log.header.device_id, log.header.boot_id))
    for log in logs:
        if log.header is not None or log.unreadable:
            continue
        siblings = runs.get((log.root, log.boot_hint), set())
        if len(siblings) == 1:
            log.device_hint, log.boot_id_hint = next(iter(siblings))
            continue
        named = _pull_state_device(log.root) or devices.get(log.root, set())
        log.device_hint = next(iter(named)) if len(named) == 1 else None


def _pull_state_device(root: Path) -> set[str]:
    state = root / "pull-state.json"
    if state.is_file():
        try:
            device = json.loads(state.read_text()).get("device_id")
        except (ValueError, OSError, AttributeError):
            device = None
        if isinstance(device, str) and device:
            return {device}
    return set()


# -- loading ---------------------------------------------------------------------------------------

@dataclass
class Run:
    """What ingestion knows of one run (device, boot id, boot number) in the database."""
    min_seq: int
    max_seq: int
    last_ticks: int
    last_uptime: int
    root: str


class Loader:
    """Reads log files into the database in batches of about BATCH_ROWS records across files.

    Each batch is one transaction: its records, and the `files`, `headers`, `boots` and `problems`
    rows of the files read completely so far. An interrupted ingest loses at most the open batch,
    and the next run reads those files again (the key keeps it from adding anything twice). A batch
    is processed as a whole (sorted once, times unwrapped with numpy, one insert), so the cost grows
    with the records, not with the number of boots times the batch.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, announce=lambda result: None):
        self.con = con
        self.announce = announce  # called with each FileResult once its records are committed
        self.known = {row[0]: row[1:] for row in con.execute(
            "SELECT path, size, mtime, head_sha256, consumed, prefix_sha256, device_id, boot, part, boot_id, "
            "records, status FROM files").fetchall()}
        self.runs = {(d, b, n): Run(*rest) for d, b, n, *rest in con.execute(
            "SELECT device_id, boot_id, boot, min_seq, max_seq, last_ticks, last_uptime, root FROM boots").fetchall()}
        self.reordered: set[tuple[str, str, int]] = set()  # runs that got records before or among stored ones
        self.records: list[pa.Table] = []
        self.small: list[Record] = []  # records of small files, made into one table per batch
        self.small_files: list[str] = []
        self.record_count = 0
        self.files: list[dict] = []
        self.headers: dict[tuple, list] = {}
        self.problems: list[Problem] = []
        self.waiting: dict[str, FileResult] = {}
        self.roots: dict[str, str] = {}  # file key -> its storage root, for the runs it holds
        self.con.execute("BEGIN TRANSACTION")

    def ingest_file(self, log: LogFile, progress: tqdm) -> FileResult:
        key = log.key
        if log.unreadable:
            return self._unreadable(log, 0, log.unreadable)
        try:
            stat = log.path.stat()
        except OSError as exc:
            return self._unreadable(log, 0, exc.strerror or str(exc))
        if log.header is None:
            self._hint_from_database(log)
        start, hasher, status, earlier_records = 0, hashlib.sha256(), "new", 0
        context = (log.device_hint, log.boot_hint, log.part_hint, log.boot_id_hint)
        known = self.known.get(key)
        if known:
            size, mtime, head_sha, consumed, prefix, device, boot, part, boot_id, records, old_status = known
            # records skipped last time for want of a camera or boot, which can be told now: read them again
            told_now = (device is None or boot is None) and context[0] is not None and context[1] is not None
            if (size == stat.st_size and mtime == stat.st_mtime and head_sha == log.head_sha256
                    and old_status != "unreadable" and not told_now):
                progress.update(stat.st_size)
                return FileResult(log.path, "unchanged")
            if (old_status != "unreadable" and not told_now and stat.st_size >= consumed
                    and _hash_prefix(log.path, consumed, hasher) == prefix):
                start, status, earlier_records = consumed, "grown", records
                context = (device or context[0], boot if boot is not None else context[1],
                           part if part is not None else context[2], boot_id or context[3])
                progress.update(consumed)
            else:
                hasher, status = hashlib.sha256(), "changed"
            self.con.execute('DELETE FROM problems WHERE path = ? AND "offset" >= ?', [key, start])
        result = FileResult(log.path, status)
        self.waiting[key] = result
        self.roots[key] = str(log.root)
        try:
            parser, consumed = self._read(log, key, start, hasher, context, result, progress)
        except OSError as exc:  # the records read so far are complete and kept; the file is read again next time
            self.waiting.pop(key, None)
            return self._unreadable(log, stat.st_size, exc.strerror or str(exc), result)
        self.files.append({
            "path": key, "root": str(log.root), "device_id": parser.device_id, "boot": parser.boot,
            "boot_id": parser.boot_id, "part": parser.part, "size": stat.st_size, "mtime": stat.st_mtime,
            "head_sha256": log.head_sha256, "consumed": consumed, "prefix_sha256": hasher.hexdigest(),
            "records": earlier_records + result.records_read, "status": status})
        return result

    def _hint_from_database(self, log: LogFile) -> None:
        """A headerless file whose camera or run this ingest's own files cannot tell, told by what earlier
        ingests stored: the one camera of its card, the one run of that camera and boot number."""
        if log.device_hint is None:
            devices = self.con.execute("SELECT DISTINCT device_id FROM files WHERE root = ? AND device_id IS NOT NULL",
                                       [str(log.root)]).fetchall()
            if len(devices) == 1:
                log.device_hint = devices[0][0]
        if log.device_hint is not None and log.boot_hint is not None and log.boot_id_hint is None:
            # only runs read from this same card or folder: another card reuses boot numbers
            runs = {b_id for (d, b_id, b), run in self.runs.items() if d == log.device_hint and b == log.boot_hint
                    and b_id != NO_BOOT_ID and run.root == str(log.root)}
            if len(runs) == 1:
                log.boot_id_hint = runs.pop()

    def _unreadable(self, log: LogFile, size: int, reason: str, result: FileResult | None = None) -> FileResult:
        """Counted and shown as unreadable; never stops the other files."""
        result = result or FileResult(log.path, "unreadable")
        result.status = "unreadable"
        problem = Problem(log.key, 0, f"unreadable file: {reason}")
        result.problems += 1
        result.shown.append(problem)
        self.problems.append(problem)
        self.waiting[log.key] = result
        self.files.append({
            "path": log.key, "root": str(log.root), "device_id": log.device_hint, "boot": log.boot_hint,
            "boot_id": log.boot_id_hint, "part": log.part_hint, "size": size, "mtime": 0.0,
            "head_sha256": None, "consumed": 0, "prefix_sha256": None, "records": result.records_read,
            "status": "unreadable"})
        return result

    def _read(self, log: LogFile, key: str, start: int, hasher, context, result: FileResult,
              progress: tqdm) -> tuple[ColumnParser, int]:
        device, boot, part, boot_id = context
        parser = ColumnParser(key, device, boot, part, offset=start, boot_id=boot_id)
        unhashed = b""  # bytes fed to the parser but not yet part of a complete line
        with open(log.path, "rb") as f:
            f.seek(start)
            if log.path.stat().st_size - start <= SMALL_FILE_BYTES:
                data = f.read()
                parsed = parser.feed(data)
                hasher.update(data[:parser.consumed - start])
                complete_bytes = parser.consumed
                parsed.extend(parser.close())
                progress.update(len(data))
                self._take_small(parsed, key, result)
                if self.record_count >= BATCH_ROWS:
                    self.flush()
                return parser, complete_bytes
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
            self.headers[(h.device_id, h.boot_id, h.boot, h.part)] = [
                h.device_id, h.boot, h.boot_id, h.part, h.format_version, h.model_sha256, h.firmware_version,
                h.omv_firmware, h.board, h.rtc, h.rtc_ticks, key]
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
                table = table.set_column(table.schema.get_field_index("boot_id"), "boot_id",
                                         pc.fill_null(table["boot_id"], NO_BOOT_ID))
                self.records.append(table.append_column("file", pa.repeat(pa.scalar(key), table.num_rows)))
                self.record_count += table.num_rows
                result.records_read += table.num_rows
        result.problems += len(problems)
        for problem in problems:
            result.reasons[_reason_kind(problem.reason)] += 1
            if len(result.shown) < SHOWN_PROBLEMS:
                result.shown.append(problem)
        self.problems += problems

    def _take_small(self, parsed: ParsedLog, key: str, result: FileResult) -> None:
        """A small file read line by line: its records wait for the batch's single table."""
        kept = [r for r in parsed.records if r.device_id is not None and r.boot is not None]
        orphans = [r for r in parsed.records if r.device_id is None or r.boot is None]
        if orphans:
            parsed.problems.append(Problem(key, orphans[0].offset, f"{len(orphans)} records skipped: no readable "
                                           "header and the camera or boot cannot be told from the folder or file name"))
        self.small += kept
        self.small_files += [key] * len(kept)
        self.record_count += len(kept)
        result.records_read += len(kept)
        self._take(ColumnChunk(empty_table(), parsed.headers, sorted(parsed.problems, key=lambda p: p.offset)),
                   key, result)

    def flush(self) -> None:
        """Write the batch and commit it; announce the files it completed."""
        if self.small:
            table = records_to_table(self.small)
            table = table.set_column(table.schema.get_field_index("boot_id"), "boot_id",
                                     pc.fill_null(table["boot_id"], NO_BOOT_ID))
            self.records.append(table.append_column("file", pa.array(self.small_files, pa.string())))
            self.small, self.small_files = [], []
        if self.records:
            table = pa.concat_tables(self.records).combine_chunks()
            self.records, self.record_count = [], 0
            self._insert(table)
        if self.headers:
            _run_with(self.con, pa.table(list(zip(*self.headers.values())), names=[
                "device_id", "boot", "boot_id", "part", "format_version", "model_sha256", "firmware_version",
                "omv_firmware", "board", "rtc", "rtc_ticks", "path"]),
                "INSERT OR REPLACE INTO headers SELECT * FROM incoming")
            self.headers = {}
        if self.problems:
            _run_with(self.con, pa.table({"path": [p.source for p in self.problems],
                                          "offset": pa.array([p.offset for p in self.problems], pa.int64()),
                                          "reason": [p.reason for p in self.problems]}),
                      "INSERT INTO problems SELECT * FROM incoming")
            self.problems = []
        if self.files:
            files = pa.Table.from_pylist(self.files, schema=FILES_SCHEMA)
            _run_with(self.con, files, """
                INSERT OR REPLACE INTO files
                SELECT i.path, i.root, i.device_id, i.boot, i.boot_id, i.part, i.size, i.mtime, i.head_sha256,
                       i.consumed, i.prefix_sha256, i.records,
                       (SELECT count(*) FROM problems p WHERE p.path = i.path), i.status, now()
                FROM incoming i""")
            done = [f["path"] for f in self.files]
            self.files = []
            for path in done:
                if path in self.waiting:
                    self.announce(self.waiting.pop(path))
        self.con.execute("COMMIT")
        self.con.execute("BEGIN TRANSACTION")

    def _insert(self, table: pa.Table) -> None:
        """One batch of records: sorted by run and seq, doubles dropped, uptime unwrapped, inserted."""
        run_key = pc.binary_join_element_wise(
            table["device_id"], table["boot_id"], pc.cast(table["boot"], pa.string()), "\x1f")
        encoded = pc.dictionary_encode(run_key).combine_chunks() if isinstance(run_key, pa.ChunkedArray) \
            else pc.dictionary_encode(run_key)
        group = encoded.indices.to_numpy()
        seq = table["seq"].to_numpy()
        order = np.lexsort((table["offset"].to_numpy(), seq, group))
        group, seq = group[order], seq[order]
        keep = np.ones(len(seq), dtype=bool)
        keep[1:] = (group[1:] != group[:-1]) | (seq[1:] != seq[:-1])  # one record read twice: keep the first
        order, group, seq = order[keep], group[keep], seq[keep]
        table = table.take(pa.array(order))
        ticks = table["ticks_ms"].to_numpy()
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], len(group)]
        devices = table["device_id"].take(pa.array(starts)).to_pylist()
        boot_ids = table["boot_id"].take(pa.array(starts)).to_pylist()
        boots = table["boot"].take(pa.array(starts)).to_pylist()
        files = table["file"].take(pa.array(starts)).to_pylist()
        base = np.empty(len(starts), dtype=np.int64)
        floor = np.full(len(starts), np.iinfo(np.int64).min // 4, dtype=np.int64)
        overlap = np.zeros(len(starts), dtype=bool)
        keys = list(zip(devices, boot_ids, boots))
        for g, key in enumerate(keys):
            run = self.runs.get(key)
            first_seq, first_ticks = int(seq[starts[g]]), int(ticks[starts[g]])
            if run is None or run.max_seq < first_seq:
                base[g] = first_ticks if run is None else run.last_uptime + ticks_diff(first_ticks, run.last_ticks)
                if run is not None:
                    floor[g] = run.last_uptime
            else:  # records before or among stored ones: provisional times, the whole run is redone at the end
                overlap[g] = True
                base[g] = first_ticks
                self.reordered.add(key)
        uptime = _unwrap_groups(ticks, starts, ends, base, floor)
        table = table.append_column("uptime_ms", pa.array(uptime))
        rows = table.select(list(db.RECORD_COLUMNS))
        counts: Counter = Counter()
        overlapping = np.repeat(overlap, ends - starts)
        if not overlapping.all():
            plain = rows.filter(pa.array(~overlapping)) if overlapping.any() else rows
            _run_with(self.con, plain, "INSERT INTO records SELECT * FROM incoming")
            counts.update({item["values"]: item["counts"] for item in pc.value_counts(plain["file"]).to_pylist()})
        if overlapping.any():
            self.con.register("incoming", rows.filter(pa.array(overlapping)))
            try:
                counts.update(path for (path,) in self.con.execute(
                    "INSERT INTO records SELECT i.* FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM records r "
                    "WHERE r.device_id = i.device_id AND r.boot_id = i.boot_id AND r.boot = i.boot "
                    "AND r.seq = i.seq) RETURNING file").fetchall())
            finally:
                self.con.unregister("incoming")
        for path, count in counts.items():
            if path in self.waiting:
                self.waiting[path].records_new += count
        self._update_runs(keys, starts, ends, seq, ticks, uptime, files)

    def _update_runs(self, keys, starts, ends, seq, ticks, uptime, files) -> None:
        changed = []
        for g, key in enumerate(keys):
            last = ends[g] - 1
            run = self.runs.get(key)
            if run is None:
                run = Run(int(seq[starts[g]]), int(seq[last]), int(ticks[last]), int(uptime[last]),
                          self.roots.get(files[g], ""))
            else:
                run.min_seq = min(run.min_seq, int(seq[starts[g]]))
                if int(seq[last]) > run.max_seq:
                    run.max_seq, run.last_ticks, run.last_uptime = int(seq[last]), int(ticks[last]), int(uptime[last])
            self.runs[key] = run
            changed.append([*key, run.min_seq, run.max_seq, run.last_ticks, run.last_uptime, run.root])
        _run_with(self.con, pa.table(list(zip(*changed)), names=[
            "device_id", "boot_id", "boot", "min_seq", "max_seq", "last_ticks", "last_uptime", "root"]), """
            INSERT OR REPLACE INTO boots SELECT device_id, boot, boot_id, min_seq, max_seq, last_ticks,
                last_uptime, root FROM incoming""")

    def close(self) -> None:
        self.flush()
        self.merge_untold_runs()
        self.fix_reordered_boots()
        self.con.execute("COMMIT")

    def merge_untold_runs(self) -> None:
        """Records a headerless file gave under boot id '-' (its run could not be told when it was read,
        say a later part ingested alone from another folder) are the same records as those of a run the
        database knows when every record they share by seq is identical: they are moved into that run and
        each is kept once. Records of another card (the same boot number, other records) and a version-1
        log's own '-' runs (a header says so) are left alone."""
        candidates = self.con.execute("""
            SELECT u.device_id, u.boot, r.boot_id, count(*) AS shared,
                   count(*) FILTER (WHERE u.kind = r.kind AND u.ticks_ms = r.ticks_ms
                                    AND u.label IS NOT DISTINCT FROM r.label AND u.score IS NOT DISTINCT FROM r.score
                                    AND u.event IS NOT DISTINCT FROM r.event) AS same
            FROM records u JOIN records r ON r.device_id = u.device_id AND r.boot = u.boot AND r.seq = u.seq
                                          AND r.boot_id <> $1
            WHERE u.boot_id = $1 AND NOT EXISTS (SELECT 1 FROM headers h WHERE h.device_id = u.device_id
                                                 AND h.boot = u.boot AND h.boot_id = $1)
            GROUP BY ALL""", [NO_BOOT_ID]).fetchall()
        matches: dict[tuple, list[str]] = {}
        for device, boot, boot_id, shared, same in candidates:
            if shared and same == shared:
                matches.setdefault((device, boot), []).append(boot_id)
        for (device, boot), ids in matches.items():
            if len(ids) != 1:
                continue
            boot_id = ids[0]
            where = "device_id = $1 AND boot = $2 AND boot_id = $3"
            args = [device, boot, NO_BOOT_ID, boot_id]
            self.con.execute(f"DELETE FROM records r WHERE {where} AND EXISTS (SELECT 1 FROM records k WHERE "
                             "k.device_id = $1 AND k.boot = $2 AND k.boot_id = $4 AND k.seq = r.seq)", args)
            for table in ("records", "files"):
                self.con.execute(f"UPDATE {table} SET boot_id = $4 WHERE {where}", args)
            self.con.execute(f"DELETE FROM boots WHERE {where}", args[:3])
            low, high = db.one(self.con, "SELECT min(seq), max(seq) FROM records WHERE device_id = $1 AND boot = $2 "
                               "AND boot_id = $3", [device, boot, boot_id])
            self.con.execute("UPDATE boots SET min_seq = $4, max_seq = $5 WHERE device_id = $1 AND boot = $2 "
                             "AND boot_id = $3", [device, boot, boot_id, low, high])
            self.runs.pop((device, NO_BOOT_ID, boot), None)
            run = self.runs[(device, boot_id, boot)]
            run.min_seq, run.max_seq = low, high
            self.reordered.add((device, boot_id, boot))  # last_ticks / last_uptime and every uptime redone

    def fix_reordered_boots(self) -> None:
        """Runs that got records before or among stored ones: unwrap the whole run again in SQL, with the
        same rule as the batch path (ticks_diff steps, never decreasing)."""
        period, half = TICKS_PERIOD, TICKS_PERIOD // 2
        for device, boot_id, boot in sorted(self.reordered):
            self.con.execute(f"""
                UPDATE records SET uptime_ms = fixed.uptime_ms FROM (
                    SELECT seq, max(first_ticks + steps) OVER w AS uptime_ms FROM (
                        SELECT seq, first_value(ticks_ms) OVER w AS first_ticks,
                               sum(coalesce((((ticks_ms - previous + {half}) % {period}) + {period}) % {period}
                                            - {half}, 0)) OVER w AS steps
                        FROM (SELECT seq, ticks_ms, lag(ticks_ms) OVER (ORDER BY seq) AS previous
                              FROM records WHERE device_id = $1 AND boot_id = $2 AND boot = $3)
                        WINDOW w AS (ORDER BY seq ROWS UNBOUNDED PRECEDING))
                    WINDOW w AS (ORDER BY seq ROWS UNBOUNDED PRECEDING)
                ) AS fixed
                WHERE records.device_id = $1 AND records.boot_id = $2 AND records.boot = $3
                  AND records.seq = fixed.seq""", [device, boot_id, boot])
            last = db.one(self.con, "SELECT ticks_ms, uptime_ms FROM records WHERE device_id = $1 AND boot_id = $2 "
                          "AND boot = $3 ORDER BY seq DESC LIMIT 1", [device, boot_id, boot])
            run = self.runs[(device, boot_id, boot)]
            run.last_ticks, run.last_uptime = last
            self.con.execute("UPDATE boots SET last_ticks = $4, last_uptime = $5 WHERE device_id = $1 AND "
                             "boot_id = $2 AND boot = $3", [device, boot_id, boot, *last])
        self.reordered.clear()


def _unwrap_groups(ticks: np.ndarray, starts: np.ndarray, ends: np.ndarray, base: np.ndarray,
                   floor: np.ndarray) -> np.ndarray:
    """Per run (rows starts[g]..ends[g] in seq order): base[g] plus the ticks_diff steps, then the running
    maximum (never below floor[g]); logread.unwrap_ticks is the one-run reference."""
    lengths = ends - starts
    steps = np.empty(len(ticks), dtype=np.int64)
    steps[0] = 0
    steps[1:] = (ticks[1:] - ticks[:-1] + TICKS_PERIOD // 2) % TICKS_PERIOD - TICKS_PERIOD // 2
    steps[starts] = 0
    total = np.cumsum(steps)
    true = total - np.repeat(total[starts], lengths) + np.repeat(base, lengths)
    true = np.maximum(true, np.repeat(floor, lengths))
    low = int(true.min())
    span = int(true.max()) - low + 1
    if span * len(starts) < (1 << 62):  # one vectorized running maximum: lift each run above the previous
        lift = np.repeat(np.arange(len(starts), dtype=np.int64) * span, lengths)
        return np.maximum.accumulate(true - low + lift) - lift + low
    out = true.copy()
    for a, b in zip(starts, ends):
        out[a:b] = np.maximum.accumulate(true[a:b])
    return out


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


# -- the camera's config.json ----------------------------------------------------------------------

def read_configs(con: duckdb.DuckDBPyConnection, roots: set[str]) -> None:
    """The config.json beside each card's logs (tools.pull archives it): the door threshold and the
    label order the report uses. Checked with the firmware's own rules (firmware/tmconfig.py)."""
    from tools.payload import tmconfig

    rows = []
    for root in sorted(roots):
        path = Path(root) / "config.json"
        if not path.is_file():
            continue
        device = _pull_state_device(Path(root))
        row = {"root": root, "device_id": next(iter(device)) if device else None, "threshold": None,
               "labels": None, "positive_label": None, "model_sha256": None, "problem": None}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            config, errors = tmconfig().validate(raw)
            if errors:
                row["problem"] = f"{path_key(path)}: {errors[0]}; the camera used defaults for it"
            row.update(threshold=config["threshold"], labels=json.dumps(config["labels"]),
                       positive_label=config["positive_label"], model_sha256=config["model_sha256"] or None)
        except (OSError, ValueError) as exc:
            row["problem"] = f"{path_key(path)}: unreadable ({str(exc).splitlines()[0][:120]}); door threshold unknown"
        rows.append(row)
    if rows:
        _run_with(con, pa.Table.from_pylist(rows, schema=CONFIG_SCHEMA),
                  "INSERT OR REPLACE INTO configs SELECT * FROM incoming")


# -- the command -----------------------------------------------------------------------------------

def ingest(sources: list[str | Path], db_path: Path | str = db.DEFAULT_DB, progress: bool | None = None,
           echo=print) -> IngestSummary:
    started = time.perf_counter()
    logs = find_logs(sources)
    con = db.connect(db_path)
    try:
        total = sum(_size(log.path) for log in logs)
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
                read_configs(con, {str(log.root) for log in logs})
                loader.close()
            except BaseException:
                con.execute("ROLLBACK")
                raise
    finally:
        con.close()
    return IngestSummary(Path(db_path), results, time.perf_counter() - started)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def describe_result(result: FileResult) -> list[str]:
    """What the user needs to read about one file: only files that had something skipped, or a status."""
    if result.status == "unchanged" or (not result.problems and result.status == "new"):
        return []
    lines = [f"{path_key(result.path)}: {result.status}, {result.records_new} new records"
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
    if args.export_parquet:
        output_folder(args.export_parquet, "--export-parquet")  # before the ingest commits anything
    summary = ingest(args.sources, args.db, progress=False if args.no_progress else None)
    print(describe_summary(summary))
    if args.export_parquet:
        out = export_parquet(args.db, args.export_parquet)
        print(f"exported records to {out / 'records'} (Parquet, partitioned by device_id and day)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
