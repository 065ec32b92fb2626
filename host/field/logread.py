"""Read (and, for tests and benchmarks, write) the SD log: contract 3, docs/log-format.md.

`parse_log(data, source)` keeps every line that is complete (ends in `\\n` or NUL) and whose checksum
and fields are valid, and reports every other stretch of bytes as a `Problem` with the file, the
byte offset and the reason. It never stops at the first bad line. `LogParser` does the same on a
stream fed in chunks, so a large file never has to sit in memory at once.

The writers (`format_header`, `format_frame`, `format_event`, `format_record`) produce lines
byte-for-byte as the firmware's `firmware/tmlog.py` does; each returns one line ending in `\\n`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)  # version 1: no boot id and no wall clock in the header
TICKS_PERIOD = 1 << 30  # MicroPython's time.ticks_ms() wraps here
TICKS_HALF = TICKS_PERIOD >> 1  # ticks_diff's range: a step of this much or more backwards is a wrap
DOOR_STATES = ("closed", "opening", "open", "holding")
EVENTS = (
    "boot", "door_open", "door_close", "error", "camera_error", "model_error",
    "config_error", "sd_full", "capture_error", "watchdog",
)
NONE_FIELD = "-"
MAX_LINE_BYTES = 1 << 16  # a stream reader gives up on a "line" this long without a line end

_HEADER_FIELDS = {1: 9, 2: 12}
_BOOT_ID = re.compile(r"[0-9a-f]{16}")
_RTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_FRAME_FIELDS = 9
_EVENT_FIELDS = 5
_CHECKSUM = re.compile(rb"[0-9a-f]{2}")
_SCORE = re.compile(r"\d{1,3}(\.\d+)?")
_NUL_TO_NEWLINE = bytes.maketrans(b"\x00", b"\n")
_NUL_RUN = re.compile(rb"\x00+")
_UNSAFE = {ord(","): "_", ord("*"): "_", **{code: "_" for code in range(32)}, 127: "_"}


@dataclass(frozen=True, slots=True)
class Header:
    format_version: int
    device_id: str
    boot: int
    part: int
    model_sha256: str
    firmware_version: str
    omv_firmware: str
    board: str
    offset: int = 0
    boot_id: str = NONE_FIELD  # 16 hex digits from the board's RNG (version 2); '-' in version 1 or unknown
    rtc: str | None = None  # UTC wall clock when the header was written, if the camera's RTC was set
    rtc_ticks: int | None = None  # ticks_ms read together with rtc


@dataclass(frozen=True, slots=True)
class Record:
    kind: str  # 'F' (frame) or 'E' (event)
    device_id: str | None
    boot: int | None
    part: int | None
    seq: int
    ticks_ms: int
    label: str | None = None
    score: float | None = None
    infer_ms: int | None = None
    frame_ms: int | None = None
    door: str | None = None
    image: str | None = None
    event: str | None = None
    detail: str | None = None
    source: str = "<bytes>"
    offset: int = 0
    boot_id: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}@{self.offset}: {self.reason}"


@dataclass
class ParsedLog:
    headers: list[Header] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def extend(self, other: ParsedLog) -> None:
        self.headers.extend(other.headers)
        self.records.extend(other.records)
        self.problems.extend(other.problems)


class _BadLine(ValueError):
    pass


class LogParser:
    """Incremental reader: `feed(chunk)` returns what the complete lines in it hold, `close()` the rest.

    `device_id`, `boot`, `part` and `boot_id` attribute records met before any readable header (for
    example when the header line itself was damaged); a header line always takes over from them.
    """

    def __init__(self, source: str = "<bytes>", device_id: str | None = None,
                 boot: int | None = None, part: int | None = None, offset: int = 0,
                 boot_id: str | None = None):
        self.source = source
        self.device_id, self.boot, self.part, self.boot_id = device_id, boot, part, boot_id
        self.offset = offset  # stream offset of the first byte of `_pending`
        self._pending = b""
        self._nul_run: list[int] | None = None  # [start, end) of a NUL run still open at a chunk edge
        self._overlong_start: int | None = None  # skipping an endless line that began here
        self._notes: list[Problem] = []  # problems found while splitting lines, not yet returned

    @property
    def consumed(self) -> int:
        """Bytes fully read: everything up to and including the last line terminator fed so far."""
        return self.offset

    def feed(self, data: bytes) -> ParsedLog:
        out = ParsedLog()
        complete, base = self._take_complete_lines(data)
        if complete:
            self._parse_lines(complete, base, out)
        out.problems += self.take_notes()
        out.problems.sort(key=lambda problem: problem.offset)
        return out

    def take_notes(self) -> list[Problem]:
        notes, self._notes = self._notes, []
        return notes

    def _take_complete_lines(self, data: bytes) -> tuple[bytes, int]:
        """The fed bytes up to the last line end (with what was pending) and their stream offset."""
        buffer = self._pending + data if self._pending else bytes(data)
        if self._overlong_start is not None:
            buffer = self._skip_overlong(buffer)
        base = self.offset
        cut = max(buffer.rfind(b"\n"), buffer.rfind(b"\x00")) + 1
        complete, self._pending = buffer[:cut], buffer[cut:]
        self.offset = base + cut
        if len(self._pending) > MAX_LINE_BYTES:  # never hold an endless "line" (a binary file) in memory
            self._overlong_start = self.offset
            self._skip_overlong(b"")
        return complete, base

    def _skip_overlong(self, buffer: bytes) -> bytes:
        """Drop bytes up to the next line end while skipping an overlong line; the rest is returned."""
        buffer = self._pending + buffer
        self._pending = b""
        end = min((i for i in (buffer.find(b"\n"), buffer.find(b"\x00")) if i >= 0), default=-1)
        if end < 0:
            self.offset += len(buffer)
            return b""
        self.offset += end + 1
        self._notes.append(Problem(
            self.source, self._overlong_start,
            f"{self.offset - self._overlong_start - 1} bytes without a line end skipped (not a log line)"))
        self._overlong_start = None
        return buffer[end + 1:]

    def close(self) -> ParsedLog:
        out = ParsedLog()
        self._flush_nul_run(out)
        out.problems += self.take_notes()
        tail = self._pending
        if self._overlong_start is not None:
            out.problems.append(Problem(
                self.source, self._overlong_start,
                f"{self.offset - self._overlong_start} bytes without a line end at the end of the file skipped"))
            self._overlong_start = None
        elif tail:
            out.problems.append(Problem(
                self.source, self.offset,
                f"truncated last line ({len(tail)} bytes without a line end), not kept"))
            self.offset += len(tail)
            self._pending = b""
        return out

    def _parse_lines(self, chunk: bytes, base: int, out: ParsedLog) -> None:
        has_nul = b"\x00" in chunk
        if has_nul:
            self._note_nul_runs(chunk, base, out)
            lines = chunk.translate(_NUL_TO_NEWLINE).split(b"\n")
        else:
            self._flush_nul_run(out)
            lines = chunk.split(b"\n")
        lines.pop()  # the chunk ends with a terminator: the last piece is empty
        offset = base
        for line in lines:
            if line:
                try:
                    self._parse_line(line, offset, out)
                except _BadLine as exc:
                    out.problems.append(Problem(self.source, offset, str(exc)))
            offset += len(line) + 1

    def _note_nul_runs(self, chunk: bytes, base: int, out: ParsedLog) -> None:
        for match in _NUL_RUN.finditer(chunk):
            start, end = base + match.start(), base + match.end()
            if self._nul_run is not None and self._nul_run[1] == start:
                self._nul_run[1] = end
                continue
            self._flush_nul_run(out)
            self._nul_run = [start, end]
        if self._nul_run is not None and self._nul_run[1] != base + len(chunk):
            self._flush_nul_run(out)

    def _flush_nul_run(self, out: ParsedLog) -> None:
        if self._nul_run is not None:
            start, end = self._nul_run
            out.problems.append(Problem(
                self.source, start, f"{end - start} NUL bytes skipped (padding left by a power cut)"))
            self._nul_run = None

    def _parse_line(self, line: bytes, offset: int, out: ParsedLog) -> None:
        star = line.find(b"*")
        if star < 0:
            raise _BadLine("no checksum ('*<cs>' missing): damaged or partial line")
        body, checksum = line[:star], line[star + 1:]
        if not _CHECKSUM.fullmatch(checksum):
            raise _BadLine(f"malformed checksum {checksum[:8]!r}: damaged line")
        expected = sum(body) & 0xFF
        if expected != int(checksum, 16):
            raise _BadLine(f"checksum mismatch (line says {checksum.decode()}, bytes sum to {expected:02x})")
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise _BadLine("non-ASCII bytes in line") from None
        if not text.isprintable():
            raise _BadLine("control characters in line")
        fields = text.split(",")
        kind = fields[0]
        if kind == "F":
            out.records.append(self._frame(fields, offset))
        elif kind == "E":
            out.records.append(self._event(fields, offset))
        elif kind == "H":
            header = _header(fields, offset)
            self.device_id, self.boot, self.part = header.device_id, header.boot, header.part
            self.boot_id = header.boot_id
            out.headers.append(header)
        else:
            raise _BadLine(f"unknown record kind {kind[:10]!r}")

    def _frame(self, fields: list[str], offset: int) -> Record:
        if len(fields) != _FRAME_FIELDS:
            raise _BadLine(f"frame record has {len(fields)} fields, expected {_FRAME_FIELDS}")
        _, seq, ticks, label, score, infer_ms, frame_ms, door, image = fields
        return Record(
            "F", self.device_id, self.boot, self.part, _count(seq, "seq"), _ticks(ticks),
            _name(label, "label"), _score(score), _optional_count(infer_ms, "infer_ms"),
            _optional_count(frame_ms, "frame_ms"), _name(door, "door"), _optional_text(image),
            None, None, self.source, offset, self.boot_id)

    def _event(self, fields: list[str], offset: int) -> Record:
        if len(fields) != _EVENT_FIELDS:
            raise _BadLine(f"event record has {len(fields)} fields, expected {_EVENT_FIELDS}")
        _, seq, ticks, event, detail = fields
        return Record(
            "E", self.device_id, self.boot, self.part, _count(seq, "seq"), _ticks(ticks),
            event=_name(event, "event"), detail=_optional_text(detail), source=self.source, offset=offset,
            boot_id=self.boot_id)


def _header(fields: list[str], offset: int) -> Header:
    if len(fields) < 2 or not fields[1].isdigit():
        raise _BadLine("header without a format version")
    version = int(fields[1])
    if version not in FORMAT_VERSIONS:
        raise _BadLine(f"log format version {version} is not supported (this reader knows versions "
                       f"{', '.join(map(str, FORMAT_VERSIONS))}): update tinymask on the host")
    if len(fields) != _HEADER_FIELDS[version]:
        raise _BadLine(f"header has {len(fields)} fields, expected {_HEADER_FIELDS[version]}")
    _, _, device_id, boot, part, sha, firmware, omv, board = fields[:9]
    boot_id, rtc, rtc_ticks = NONE_FIELD, None, None
    if version >= 2:
        boot_id, rtc_text, ticks_text = fields[9:12]
        if boot_id != NONE_FIELD and not _BOOT_ID.fullmatch(boot_id):
            raise _BadLine(f"boot id {boot_id[:20]!r} is not 16 hex digits")
        if rtc_text != NONE_FIELD:
            if not _RTC.fullmatch(rtc_text):
                raise _BadLine(f"wall clock {rtc_text[:24]!r} is not YYYY-MM-DDTHH:MM:SSZ")
            rtc, rtc_ticks = rtc_text, _ticks(ticks_text)
    return Header(version, _name(device_id, "device_id"), _count(boot, "boot"), _count(part, "part"),
                  sha, firmware, omv, board, offset, boot_id, rtc, rtc_ticks)


def _count(text: str, name: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise _BadLine(f"{name} {text[:16]!r} is not a non-negative integer")
    return int(text)


def _optional_count(text: str, name: str) -> int | None:
    return None if text == NONE_FIELD else _count(text, name)


def _ticks(text: str) -> int:
    ticks = _count(text, "ticks_ms")
    if ticks >= TICKS_PERIOD:
        raise _BadLine(f"ticks_ms {ticks} is beyond the 2**30 wrap")
    return ticks


def _score(text: str) -> float | None:
    if text == NONE_FIELD:
        return None
    if not _SCORE.fullmatch(text):
        raise _BadLine(f"score {text[:16]!r} is not a decimal number")
    score = float(text)
    if score > 1.0:
        raise _BadLine(f"score {text} is above 1")
    return score


def _name(text: str, name: str) -> str:
    if not text:
        raise _BadLine(f"{name} is empty")
    return text


def _optional_text(text: str) -> str | None:
    return None if text == NONE_FIELD else text


def parse_log(data: bytes, source: str = "<bytes>", *, device_id: str | None = None,
              boot: int | None = None, part: int | None = None, boot_id: str | None = None) -> ParsedLog:
    """Every valid complete record in `data`, and a Problem for every stretch that is not one."""
    parser = LogParser(source, device_id, boot, part, boot_id=boot_id)
    parsed = parser.feed(data)
    parsed.extend(parser.close())
    return parsed


def ticks_diff(a: int, b: int) -> int:
    """MicroPython's time.ticks_diff(a, b) for ticks_ms: the signed distance, in [-2**29, 2**29)."""
    return ((a - b + TICKS_HALF) % TICKS_PERIOD) - TICKS_HALF


def unwrap_ticks(ticks: list[int] | tuple[int, ...], start: int = 0) -> list[int]:
    """ticks_ms values in seq order to an uptime that never decreases.

    Each step is ticks_diff(tick, previous), as the firmware measures time: a wrap is recognised only
    where the counter really can have wrapped (a step back of 2**29 ms or more, i.e. past 2**30 to a
    small value); a small step back (a record logged after a later-stamped one, as firmware before
    format version 2 did) keeps the time reached so far instead of jumping 298 hours ahead."""
    out: list[int] = []
    true_time = reached = previous = 0
    for i, tick in enumerate(ticks):
        true_time = start + tick if i == 0 else true_time + ticks_diff(tick, previous)
        reached = true_time if i == 0 else max(reached, true_time)
        previous = tick
        out.append(reached)
    return out


# -- writers -----------------------------------------------------------------------------------

def checksum(body: bytes) -> int:
    """Sum of the bytes before '*', modulo 256."""
    return sum(body) & 0xFF


def clean_field(value: object) -> str:
    """A value as a log field: None and '' become '-'; separators, control and non-ASCII characters '_'."""
    if value is None:
        return NONE_FIELD
    text = str(value).translate(_UNSAFE)
    if not text:
        return NONE_FIELD
    if not text.isascii():
        text = "".join(c if c.isascii() else "_" for c in text)
    return text


def format_line(fields: list[object] | tuple[object, ...]) -> str:
    body = ",".join(clean_field(f) for f in fields)
    return f"{body}*{checksum(body.encode('ascii')):02x}\n"


def boot_id_for(device_id: str, boot: int) -> str:
    """A stable 16-hex-digit boot id for test and benchmark writers (the firmware draws a random one)."""
    import hashlib

    return hashlib.sha256(f"{device_id}/{boot}".encode()).hexdigest()[:16]


def format_header(device_id: str, boot: int, part: int = 0, model_sha256: str = "-",
                  firmware_version: str = "-", omv_firmware: str = "-", board: str = "-",
                  format_version: int = FORMAT_VERSION, boot_id: str | None = None,
                  rtc: str | None = None, rtc_ticks: int | None = None) -> str:
    fields = ["H", format_version, device_id, boot, part, model_sha256, firmware_version, omv_firmware, board]
    if format_version >= 2:
        fields += [boot_id, rtc, None if rtc is None else rtc_ticks]
    return format_line(fields)


def format_frame(seq: int, ticks_ms: int, label: str, score: float | None, infer_ms: int | None,
                 frame_ms: int | None, door: str = "closed", image: str | None = None) -> str:
    return format_line(("F", seq, ticks_ms % TICKS_PERIOD, label, score_text(score), infer_ms, frame_ms,
                        door, image))


def score_text(score: float | None) -> str | None:
    """4 decimals rounded half up in integers, as the firmware writes them (int8 scores are multiples
    of 1/256, so ties such as 0.03125 happen; '%.4f' would round those to even)."""
    if score is None:
        return None
    n = int(score * 10000 + 0.5) if score >= 0 else -int(0.5 - score * 10000)
    sign, n = ("-", -n) if n < 0 else ("", n)
    return f"{sign}{n // 10000}.{n % 10000:04d}"


DETAIL_MAX = 200  # the firmware cuts event details to this many characters (firmware/tmlog.py)


def format_event(seq: int, ticks_ms: int, event: str, detail: str | None = None) -> str:
    return format_line(("E", seq, ticks_ms % TICKS_PERIOD, event, clean_field(detail)[:DETAIL_MAX]))


def format_record(record: Record | Header) -> str:
    """The line for a parsed Record or Header (round trip: parse_log(format_record(r)) gives r back)."""
    if isinstance(record, Header):
        return format_header(record.device_id, record.boot, record.part, record.model_sha256,
                             record.firmware_version, record.omv_firmware, record.board,
                             record.format_version, record.boot_id, record.rtc, record.rtc_ticks)
    if record.kind == "F":
        return format_frame(record.seq, record.ticks_ms, record.label, record.score, record.infer_ms,
                            record.frame_ms, record.door, record.image)
    if record.kind == "E":
        return format_event(record.seq, record.ticks_ms, record.event, record.detail)
    raise ValueError(f"unknown record kind {record.kind!r}")
