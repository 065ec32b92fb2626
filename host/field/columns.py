"""The log reader's bulk path: whole chunks of log lines to an Arrow table, for `host.ingest`.

`host.field.logread.LogParser` checks one line at a time in Python (about 10 us a line). A day of one
camera is 2.6 million lines, so ingestion screens lines with numpy (line ends, checksum, printable
bytes, field count) and splits and validates the fields with Arrow compute kernels. Any line this
path does not accept is handed to `LogParser`'s own line parser, which decides (keeps it or reports
why not). So this path may only ever be stricter than logread, never more lenient; the tests check
that both give the same records and the same problems on damaged logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from host.field.logread import TICKS_PERIOD, Header, LogParser, ParsedLog, Problem, Record

RECORD_SCHEMA = pa.schema([
    ("kind", pa.string()),
    ("device_id", pa.string()),
    ("boot", pa.int64()),
    ("boot_id", pa.string()),
    ("part", pa.int64()),
    ("seq", pa.int64()),
    ("ticks_ms", pa.int64()),
    ("label", pa.string()),
    ("score", pa.float64()),
    ("infer_ms", pa.int64()),
    ("frame_ms", pa.int64()),
    ("door", pa.string()),
    ("image", pa.string()),
    ("event", pa.string()),
    ("detail", pa.string()),
    ("offset", pa.int64()),
])

_STAR, _COMMA, _NEWLINE, _NUL = 42, 44, 10, 0
_FRAME_COMMAS, _EVENT_COMMAS = 8, 4
_HEX_VALUE = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_c] = _i
_MAX_DIGITS = 12
_SCORE_PATTERN = r"^(\d{1,3}(\.\d+)?|-)$"


@dataclass
class ColumnChunk:
    table: pa.Table
    headers: list[Header] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class ColumnParser(LogParser):
    """LogParser whose `feed_table(chunk)` returns an Arrow table of records instead of Records."""

    def feed_table(self, data: bytes) -> ColumnChunk:
        complete, base = self._take_complete_lines(data)
        out = ColumnChunk(empty_table(), problems=self.take_notes())
        if not complete:
            return out
        slow = ParsedLog()
        if b"\x00" in complete:
            self._note_nul_runs(complete, base, slow)
        else:
            self._flush_nul_run(slow)
        tables = self._parse_columns(complete, base, slow)
        if slow.records:
            tables.append(records_to_table(slow.records))
        out.table = pa.concat_tables(tables) if tables else out.table
        out.headers = slow.headers
        out.problems = sorted(out.problems + slow.problems, key=lambda problem: problem.offset)
        return out

    def close_table(self) -> ColumnChunk:
        tail = self.close()
        return ColumnChunk(records_to_table(tail.records), tail.headers, tail.problems)

    def _parse_columns(self, chunk: bytes, base: int, slow: ParsedLog) -> list[pa.Table]:
        lines = _Lines(chunk)
        tables = []
        # A header changes who the following records belong to: cut the chunk at every header line.
        header_rows = np.flatnonzero((lines.first == ord("H")) & (lines.ends > lines.starts))
        header_set = set(header_rows.tolist())
        bounds = sorted({0, *header_set, len(lines.ends)})
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if lo in header_set:
                self._slow_line(lines, lo, base, slow)
                lo += 1
            if hi > lo:
                tables.extend(self._segment(lines, lo, hi, base, slow))
        return tables

    def _slow_line(self, lines: _Lines, row: int, base: int, slow: ParsedLog) -> None:
        start, end = int(lines.starts[row]), int(lines.ends[row])
        if end > start:
            try:
                self._parse_line(lines.data[start:end], base + start, slow)
            except ValueError as exc:  # logread's _BadLine
                slow.problems.append(Problem(self.source, base + start, str(exc)))

    def _segment(self, lines: _Lines, lo: int, hi: int, base: int, slow: ParsedLog) -> list[pa.Table]:
        rows = np.arange(lo, hi)
        sound = lines.sound(rows)
        tables = []
        accepted = np.zeros(len(rows), dtype=bool)
        for kind, commas, build in (("F", _FRAME_COMMAS, self._frames), ("E", _EVENT_COMMAS, self._events)):
            picked = rows[sound & (lines.first[rows] == ord(kind)) & (lines.commas(rows) == commas)]
            if len(picked) == 0:
                continue
            table, ok = build(lines, picked, base)
            tables.append(table)
            accepted[picked[ok] - lo] = True
        for row in rows[~accepted & (lines.ends[rows] > lines.starts[rows])]:
            self._slow_line(lines, int(row), base, slow)
        return tables

    def _context(self, n: int) -> dict:
        return {
            "device_id": pa.repeat(pa.scalar(self.device_id, pa.string()), n),
            "boot": pa.repeat(pa.scalar(self.boot, pa.int64()), n),
            "boot_id": pa.repeat(pa.scalar(self.boot_id, pa.string()), n),
            "part": pa.repeat(pa.scalar(self.part, pa.int64()), n),
        }

    def _frames(self, lines: _Lines, rows: np.ndarray, base: int) -> tuple[pa.Table, np.ndarray]:
        fields = lines.fields(rows, _FRAME_COMMAS + 1)
        seq, seq_ok = _counts(fields[1])
        ticks, ticks_ok = _counts(fields[2])
        ticks_ok = pc.and_(ticks_ok, pc.less(ticks, TICKS_PERIOD))
        infer_ms, infer_ok = _counts(fields[5], optional=True)
        frame_ms, frame_ok = _counts(fields[6], optional=True)
        score, score_ok = _scores(fields[4])
        ok = _all_true(seq_ok, ticks_ok, infer_ok, frame_ok, score_ok,
                       _non_empty(fields[3]), _non_empty(fields[7]))
        columns = {
            "kind": pa.repeat(pa.scalar("F"), len(rows)),
            **self._context(len(rows)),
            "seq": seq, "ticks_ms": ticks, "label": fields[3], "score": score,
            "infer_ms": infer_ms, "frame_ms": frame_ms,
            "door": fields[7], "image": _none_if_dash(fields[8]),
            "event": pa.nulls(len(rows), pa.string()), "detail": pa.nulls(len(rows), pa.string()),
            "offset": pa.array(lines.starts[rows] + base),
        }
        return _table(columns).filter(pa.array(ok)), ok

    def _events(self, lines: _Lines, rows: np.ndarray, base: int) -> tuple[pa.Table, np.ndarray]:
        fields = lines.fields(rows, _EVENT_COMMAS + 1)
        seq, seq_ok = _counts(fields[1])
        ticks, ticks_ok = _counts(fields[2])
        ticks_ok = pc.and_(ticks_ok, pc.less(ticks, TICKS_PERIOD))
        ok = _all_true(seq_ok, ticks_ok, _non_empty(fields[3]))
        n = len(rows)
        columns = {
            "kind": pa.repeat(pa.scalar("E"), n),
            **self._context(n),
            "seq": seq, "ticks_ms": ticks,
            "label": pa.nulls(n, pa.string()), "score": pa.nulls(n, pa.float64()),
            "infer_ms": pa.nulls(n, pa.int64()), "frame_ms": pa.nulls(n, pa.int64()),
            "door": pa.nulls(n, pa.string()), "image": pa.nulls(n, pa.string()),
            "event": fields[3], "detail": _none_if_dash(fields[4]),
            "offset": pa.array(lines.starts[rows] + base),
        }
        return _table(columns).filter(pa.array(ok)), ok


class _Lines:
    """Line boundaries and running counts over one chunk of complete lines."""

    def __init__(self, data: bytes):
        self.data = data
        self.bytes = np.frombuffer(data, dtype=np.uint8)
        self.ends = np.flatnonzero((self.bytes == _NEWLINE) | (self.bytes == _NUL))
        self.starts = np.empty_like(self.ends)
        self.starts[:1] = 0
        self.starts[1:] = self.ends[:-1] + 1
        self.first = self.bytes[self.starts]  # the line end itself for an empty line
        s, e = self.starts, self.ends
        self.long_enough = e - s >= 5
        self.star_at = np.where(self.long_enough, e - 3, s)
        # per line: sum of the body bytes mod 256 (uint8 wraps), and counts of '*', ',' and bad bytes
        bounds = np.empty(2 * len(s), dtype=np.int64)
        bounds[0::2], bounds[1::2] = s, np.maximum(self.star_at, s)
        self.body_sum = np.add.reduceat(self.bytes, bounds, dtype=np.uint8)[0::2] if len(s) else s
        self.stars = _count_between(np.flatnonzero(self.bytes == _STAR), s, e)
        self.comma_count = _count_between(np.flatnonzero(self.bytes == _COMMA), s, e)
        self.unprintable = _count_between(np.flatnonzero((self.bytes < 32) | (self.bytes > 126)), s, e)
        # every line as one string, its '*' turned into ',' so that splitting on ',' ends with the checksum
        offsets = np.append(self.starts, self.ends[-1:] + 1).astype(np.int64)
        separated = np.where(self.bytes == _STAR, np.uint8(_COMMA), self.bytes)
        self.text = pa.LargeStringArray.from_buffers(
            len(self.ends), pa.py_buffer(offsets), pa.py_buffer(separated.tobytes()))

    def sound(self, rows: np.ndarray) -> np.ndarray:
        """Lines ending in '*<two lowercase hex digits>' that match, one '*', printable ASCII only."""
        s, e, star = self.starts[rows], self.ends[rows], self.star_at[rows]
        long_enough = self.long_enough[rows]
        hi = _HEX_VALUE[self.bytes[np.where(long_enough, e - 2, s)]]
        lo = _HEX_VALUE[self.bytes[np.where(long_enough, e - 1, s)]]
        body_sum = np.where(star > s, self.body_sum[rows], 0).astype(np.int16)
        return (long_enough & (self.bytes[star] == _STAR) & (hi >= 0) & (lo >= 0)
                & (body_sum == hi * 16 + lo)
                & (self.stars[rows] == 1)
                & (self.unprintable[rows] == 0)
                & (self.bytes[np.minimum(s + 1, e)] == _COMMA))

    def commas(self, rows: np.ndarray) -> np.ndarray:
        return self.comma_count[rows]

    def fields(self, rows: np.ndarray, count: int) -> list[pa.Array]:
        """The `count` fields of sound lines with exactly that many, as Arrow string columns."""
        parts = pc.split_pattern(self.text.take(pa.array(rows)), ",")
        return [pc.cast(pc.list_element(parts, i), pa.string()) for i in range(count)]


def _count_between(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of the sorted `positions` fall in [start, end) for each line."""
    return np.searchsorted(positions, ends) - np.searchsorted(positions, starts)


def _counts(text: pa.Array, optional: bool = False) -> tuple[pa.Array, pa.Array]:
    """Non-negative integers of at most 12 digits (or '-' for None when optional), and a validity mask."""
    digits = pc.and_(pc.utf8_is_digit(text), pc.less_equal(pc.utf8_length(text), _MAX_DIGITS))
    values = pc.cast(pc.if_else(digits, text, pa.scalar(None, text.type)), pa.int64())
    if not optional:
        return values, digits
    return values, pc.or_(digits, pc.equal(text, "-"))


def _scores(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    ok = pc.match_substring_regex(text, _SCORE_PATTERN)
    numeric = pc.and_(ok, pc.not_equal(text, "-"))
    values = pc.cast(pc.if_else(numeric, text, pa.scalar(None, text.type)), pa.float64())
    return values, pc.and_(ok, pc.fill_null(pc.less_equal(values, 1.0), True))


def _non_empty(text: pa.Array) -> pa.Array:
    return pc.greater(pc.utf8_length(text), 0)


def _none_if_dash(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, "-"), pa.scalar(None, text.type), text)


def _all_true(*masks: pa.Array) -> np.ndarray:
    ok = masks[0]
    for mask in masks[1:]:
        ok = pc.and_(ok, mask)
    return pc.fill_null(ok, False).to_numpy(zero_copy_only=False)


def _table(columns: dict) -> pa.Table:
    arrays = []
    for name, typ in zip(RECORD_SCHEMA.names, RECORD_SCHEMA.types):
        array = columns[name]
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        arrays.append(array.cast(typ) if array.type != typ else array)
    return pa.Table.from_arrays(arrays, schema=RECORD_SCHEMA)


def empty_table() -> pa.Table:
    return RECORD_SCHEMA.empty_table()


def records_to_table(records: list[Record]) -> pa.Table:
    """logread Records (the slow path) as rows of the record table."""
    columns = {name: [getattr(r, name) for r in records] for name in RECORD_SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=RECORD_SCHEMA)
