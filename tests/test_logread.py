"""The SD log reader (contract 3): exact format, and property tests for damaged logs."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.field.logread import (
    EVENTS,
    TICKS_PERIOD,
    LogParser,
    Record,
    format_event,
    format_frame,
    format_header,
    format_record,
    parse_log,
    unwrap_ticks,
)

TERMINATORS = (0x0A, 0x00)

# -- generators ---------------------------------------------------------------------------------

device_ids = st.text(alphabet="0123456789abcdef", min_size=4, max_size=12)
labels = st.sampled_from(["with_mask", "without_mask"])
doors = st.sampled_from(["closed", "opening", "open", "holding"])
free_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 _-.,*:=", max_size=20)


@st.composite
def logs(draw, max_records: int = 25):
    """A list of log lines (str, each ending in '\\n') as the firmware would write one file."""
    device = draw(device_ids)
    boot = draw(st.integers(0, 999_999))
    part = draw(st.integers(0, 999))
    lines = [format_header(device, boot, part, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7")]
    seq = draw(st.integers(0, 10_000))
    ticks = draw(st.integers(0, TICKS_PERIOD - 1))
    for _ in range(draw(st.integers(0, max_records))):
        seq += draw(st.integers(1, 3))
        ticks += draw(st.integers(0, 5000))
        if draw(st.booleans()):
            label = draw(labels)
            image = draw(st.none() | st.just(f"captures/{label}/b{boot:06d}-s{seq:06d}.jpg"))
            lines.append(format_frame(
                seq, ticks, label, draw(st.floats(0, 1) | st.none()), draw(st.integers(0, 999)),
                draw(st.integers(0, 9999) | st.none()), draw(doors), image))
        else:
            lines.append(format_event(seq, ticks, draw(st.sampled_from(EVENTS)), draw(free_text)))
    return lines


non_ascii_garbage = st.tuples(
    st.binary(max_size=8), st.integers(0x80, 0xFF), st.binary(max_size=8)
).map(lambda parts: (parts[0] + bytes([parts[1]]) + parts[2]).replace(b"\n", b"#").replace(b"\x00", b"#"))


@st.composite
def damaged(draw, garbage=non_ascii_garbage, max_ops: int = 4):
    """(original lines, damaged bytes): cuts, NUL padding, garbage splices and stray line ends."""
    lines = draw(logs())
    data = "".join(lines).encode()
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["cut", "pad", "splice", "split"]))
        at = draw(st.integers(0, len(data)))
        if op == "cut":
            data = data[:at]
        elif op == "pad":
            data = data + b"\x00" * draw(st.integers(1, 600))
        elif op == "splice":
            data = data[:at] + draw(garbage) + data[at:]
        else:
            data = data[:at] + draw(st.sampled_from([b"\n", b"\x00"])) + data[at:]
    return lines, data


def intact_count(line: bytes, data: bytes) -> int:
    """How many times `line` stands in `data` as a whole, terminated line."""
    count, start = 0, data.find(line)
    while start >= 0:
        end = start + len(line)
        before_ok = start == 0 or data[start - 1] in TERMINATORS
        if before_ok and end < len(data) and data[end] in TERMINATORS:
            count += 1
        start = data.find(line, start + 1)
    return count


def key(record: Record) -> str:
    return format_record(record)


def check_survivors(lines: list[str], data: bytes) -> None:
    parsed = parse_log(data, "card.log")
    expected = [line for line in lines[1:] for _ in range(intact_count(line.encode()[:-1], data))]
    assert [key(r) for r in parsed.records] == expected
    for record in parsed.records:
        line = key(record).encode()[:-1]
        assert data[record.offset:record.offset + len(line)] == line
        assert record.source == "card.log"
    header_expected = intact_count(lines[0].encode()[:-1], data)
    assert len(parsed.headers) == header_expected


# -- properties ---------------------------------------------------------------------------------

@given(logs())
def test_round_trip_every_line(lines):
    data = "".join(lines).encode()
    parsed = parse_log(data)
    assert parsed.problems == []
    assert [format_record(h) for h in parsed.headers] == lines[:1]
    assert [format_record(r) for r in parsed.records] == lines[1:]
    header = parsed.headers[0]
    assert all((r.device_id, r.boot, r.part) == (header.device_id, header.boot, header.part)
               for r in parsed.records)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_every_complete_record_survives_exactly_once(case):
    lines, data = case
    check_survivors(lines, data)


ascii_garbage = st.binary(min_size=1, max_size=12).map(
    lambda g: g.replace(b"\n", b"#").replace(b"\x00", b"#")
).filter(lambda g: sum(g) % 256 != 0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(garbage=ascii_garbage, max_ops=1))
def test_one_splice_of_any_garbage_is_caught(case):
    """A single splice whose bytes do not sum to 0 mod 256 always breaks the checksum it lands in."""
    lines, data = case
    check_survivors(lines, data)


@settings(max_examples=150, deadline=None)
@given(logs(), st.binary(max_size=200), st.integers(0, 10_000))
def test_arbitrary_bytes_never_crash_and_keep_untouched_lines(lines, garbage, where):
    data = "".join(lines).encode()
    at = where % (len(data) + 1)
    damaged_data = data[:at] + garbage + data[at:]
    parsed = parse_log(damaged_data)
    kept = {key(r) for r in parsed.records}
    for line in lines[1:]:
        if intact_count(line.encode()[:-1], damaged_data):
            assert line in kept


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(), st.lists(st.integers(1, 200), min_size=1, max_size=30))
def test_chunked_feeding_matches_whole(case, sizes):
    _, data = case
    whole = parse_log(data, "f")
    parser = LogParser("f")
    records, problems, position, i = [], [], 0, 0
    while position < len(data):
        size = sizes[i % len(sizes)]
        chunk = parser.feed(data[position:position + size])
        records += chunk.records
        problems += chunk.problems
        position += size
        i += 1
    tail = parser.close()
    assert records + tail.records == whole.records
    assert problems + tail.problems == whole.problems
    assert parser.consumed == len(data)


@given(st.integers(0, TICKS_PERIOD - 1), st.lists(st.integers(0, TICKS_PERIOD // 2 - 1), max_size=50))
def test_unwrap_ticks_recovers_uptime(start, steps):
    uptime = [start]
    for step in steps:
        uptime.append(uptime[-1] + step)
    wrapped = [u % TICKS_PERIOD for u in uptime]
    assert unwrap_ticks(wrapped) == uptime


@given(st.integers(0, TICKS_PERIOD - 1),
       st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 100)), min_size=1, max_size=60))
def test_small_steps_back_never_look_like_a_wrap(start, steps):
    """Records logged a little out of time order (a door event stamped after the frame logged next,
    as firmware before format 2 wrote them): the uptime never decreases and never jumps 2**30 ahead."""
    true, ticks = start, []
    for forward, back in steps:
        true += forward
        ticks.append((true - back) % TICKS_PERIOD)  # stamped up to 100 ms early
    uptime = unwrap_ticks(ticks)
    assert all(b >= a for a, b in zip(uptime, uptime[1:]))
    assert uptime[-1] - uptime[0] <= true - start + 100  # no phantom wrap: 2**30 ms would be 298 hours


def test_a_door_event_stamped_after_the_next_frame_adds_no_time():
    # the example: E,5,2243,door_open then F,6,2218
    assert unwrap_ticks([2200, 2243, 2218, 2251]) == [2200, 2243, 2243, 2251]


# -- exact format -------------------------------------------------------------------------------

def test_scores_round_half_up_like_the_firmware():
    assert [format_frame(0, 0, "m", q / 256, 1, 1).split(",")[4] for q in (8, 24, 255, 256)] == [
        "0.0313", "0.0938", "0.9961", "1.0000"]


def test_checksum_is_sum_of_bytes_before_star_mod_256():
    line = format_frame(1, 1120, "with_mask", 0.9731, 14, 33, "closed")
    body, checksum = line.rstrip("\n").split("*")
    assert body == "F,1,1120,with_mask,0.9731,14,33,closed,-"
    assert int(checksum, 16) == sum(body.encode()) % 256
    assert checksum == checksum.lower() and len(checksum) == 2


def test_writer_replaces_separators_in_fields():
    line = format_event(3, 10, "error", "bad, very*bad\nthing")
    assert line.count(",") == 4 and line.count("*") == 1 and line.endswith("\n") and line.count("\n") == 1
    assert parse_log(line.encode()).records[0].detail == "bad_ very_bad_thing"


def test_problems_name_file_offset_and_reason():
    good = format_header("cam1", 7, 1) + format_frame(0, 5, "with_mask", 0.9, 14, 33, "closed")
    corrupted = "F,2,71,with_mask,0.9,14,33,closed,-*00\n"
    no_star = "F,3,104,with_mask\n"
    trailing = format_event(4, 140, "door_open", "-")
    data = (good + corrupted + no_star + trailing).encode() + b"\x00" * 32 + b"E,5,1"
    parsed = parse_log(data, "logs/b000007-p001.log")
    assert [r.seq for r in parsed.records] == [0, 4]
    assert parsed.records[0].boot == 7 and parsed.records[0].part == 1 and parsed.records[0].device_id == "cam1"
    reasons = [(p.offset, p.reason.split(" ")[0]) for p in parsed.problems]
    assert reasons == [
        (len(good), "checksum"),
        (len(good + corrupted), "no"),
        (len(good + corrupted + no_star + trailing), "32"),
        (len(good + corrupted + no_star + trailing) + 32, "truncated"),
    ]
    assert all(p.source == "logs/b000007-p001.log" for p in parsed.problems)


def test_unknown_format_version_is_reported_not_guessed():
    body = "H,3,cam1,1,0,-,-,-,-"
    line = f"{body}*{sum(body.encode()) % 256:02x}\n"
    parsed = parse_log(line.encode() + format_frame(0, 1, "with_mask", 0.5, 1, 1).encode(), "x.log")
    assert parsed.headers == []
    assert "version 3" in parsed.problems[0].reason
    assert parsed.records[0].device_id is None


def test_fallback_attribution_before_any_header():
    data = format_frame(0, 1, "with_mask", 0.5, 1, 1).encode()
    parsed = parse_log(data, device_id="cam9", boot=3, part=2)
    assert (parsed.records[0].device_id, parsed.records[0].boot, parsed.records[0].part) == ("cam9", 3, 2)


def test_invalid_fields_are_rejected_with_reason():
    def line(body: str) -> bytes:
        return f"{body}*{sum(body.encode()) % 256:02x}\n".encode()

    cases = {
        "F,1,2,with_mask,1.5,1,1,closed,-": "above 1",
        "F,x,2,with_mask,0.5,1,1,closed,-": "seq",
        f"F,1,{TICKS_PERIOD},with_mask,0.5,1,1,closed,-": "wrap",
        "F,1,2,with_mask,nan,1,1,closed,-": "score",
        "F,1,2,with_mask,0.5,1,1,closed": "fields",
        "E,1,2,,-": "event",
        "Q,1,2": "kind",
    }
    for body, reason in cases.items():
        parsed = parse_log(line(body))
        assert parsed.records == [], body
        assert reason in parsed.problems[0].reason, (body, parsed.problems)


def test_endless_line_is_skipped_without_holding_it_in_memory():
    good = format_frame(5, 10, "with_mask", 0.5, 1, 1).encode()
    parser = LogParser("binary.log", device_id="cam", boot=1, part=0)
    records, problems = [], []
    for _ in range(50):  # 50 x 4 KiB of bytes that never end a line, then a line end and a record
        out = parser.feed(b"x" * 4096)
        assert len(parser._pending) <= 4096 + 65536
        records += out.records
        problems += out.problems
    out = parser.feed(b"tail\n" + good)
    tail = parser.close()
    records += out.records + tail.records
    problems += out.problems + tail.problems
    assert [r.seq for r in records] == [5]
    assert len(problems) == 1 and problems[0].offset == 0 and "without a line end" in problems[0].reason


def _firmware_log_writer():
    """firmware/tmlog.py's pure formatting functions (the board's writer), imported under CPython."""
    import importlib
    import sys
    from pathlib import Path

    firmware = str(Path(__file__).resolve().parents[1] / "firmware")
    before = set(sys.modules)
    sys.path.insert(0, firmware)
    try:
        return importlib.import_module("tmlog")
    finally:
        sys.path.remove(firmware)
        for name in set(sys.modules) - before:  # leave no firmware module behind for other tests
            del sys.modules[name]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, TICKS_PERIOD - 1), labels,
       st.floats(0, 1) | st.integers(0, 256).map(lambda q: q / 256) | st.none(),
       st.integers(0, 999) | st.none(), st.integers(0, 9999) | st.none(), doors, st.none() | st.just("captures/x.jpg"),
       st.sampled_from(EVENTS), free_text, device_ids)
def test_host_writers_match_the_firmware_writer(seq, ticks, label, score, infer_ms, frame_ms, door, image,
                                                event, detail, device):
    tmlog = _firmware_log_writer()
    assert format_frame(seq, ticks, label, score, infer_ms, frame_ms, door, image) == tmlog.format_line(
        tmlog.frame_body(seq, ticks, label, score, infer_ms, frame_ms, door, image or "-"))
    assert format_event(seq, ticks, event, detail) == tmlog.format_line(tmlog.event_body(seq, ticks, event, detail))
    assert format_header(device, 3, 1, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7") == tmlog.format_line(
        tmlog.header_body(device, 3, 1, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7"))
