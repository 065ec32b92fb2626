"""The bulk (columnar) path of the log reader agrees with host.field.logread line by line."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_logread import ascii_garbage, damaged

from host.field.columns import RECORD_SCHEMA, ColumnParser
from host.field.logread import format_event, format_frame, format_header, parse_log


def columnar(data: bytes, sizes: list[int], **context):
    parser = ColumnParser("f", **context)
    tables, headers, problems, position, i = [], [], [], 0, 0
    while position < len(data):
        size = sizes[i % len(sizes)]
        chunk = parser.feed_table(data[position:position + size])
        tables.append(chunk.table)
        headers += chunk.headers
        problems += chunk.problems
        position, i = position + size, i + 1
    tail = parser.close_table()
    rows = [row for table in tables + [tail.table] for row in table.to_pylist()]
    return sorted(rows, key=lambda row: row["offset"]), headers + tail.headers, problems + tail.problems


def as_rows(records):
    return [{name: getattr(r, name) for name in RECORD_SCHEMA.names} for r in records]


def check_same(data: bytes, sizes: list[int], **context):
    reference = parse_log(data, "f", **context)
    rows, headers, problems = columnar(data, sizes, **context)
    assert rows == as_rows(reference.records)
    assert headers == reference.headers
    assert problems == reference.problems


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(), st.lists(st.integers(1, 400), min_size=1, max_size=5))
def test_columnar_matches_logread_on_damaged_logs(case, sizes):
    check_same(case[1], sizes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(garbage=ascii_garbage), st.integers(50, 5000))
def test_columnar_matches_logread_with_ascii_garbage(case, size):
    check_same(case[1], [size])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 300))
def test_columnar_matches_logread_on_any_bytes(data, size):
    check_same(data, [size], device_id="cam", boot=1, part=0)


def test_columnar_reads_every_field_and_several_headers():
    text = (format_header("cam1", 4, 0) + format_frame(0, 10, "with_mask", 0.9731, 14, 33, "open", "captures/with_mask/b000004-s000000.jpg")
            + format_event(1, 20, "door_open", "score=0.97") + format_frame(2, 30, "without mask", None, None, None, "closed")
            + format_header("cam1", 4, 1) + format_frame(3, 40, "with_mask", 1.0, 15, 34, "holding"))
    rows, headers, problems = columnar(text.encode(), [1 << 20])
    assert problems == [] and [h.part for h in headers] == [0, 1]
    assert [(r["kind"], r["seq"], r["part"], r["label"], r["score"], r["door"], r["image"], r["event"], r["detail"]) for r in rows] == [
        ("F", 0, 0, "with_mask", 0.9731, "open", "captures/with_mask/b000004-s000000.jpg", None, None),
        ("E", 1, 0, None, None, None, None, "door_open", "score=0.97"),
        ("F", 2, 0, "without mask", None, "closed", None, None, None),
        ("F", 3, 1, "with_mask", 1.0, "holding", None, None, None),
    ]
    assert rows[1]["infer_ms"] is None and rows[0]["infer_ms"] == 14 and rows[0]["frame_ms"] == 33


tricky = st.sampled_from(["", "-", "0", "12", "0012", "1.5", "1.0", "1.0000", "0.9731", "999.1", "1000",
                          "nan", " 1", "1e3", "1.", ".5", "+1", "1234567890123", "123456789012",
                          str(2**30), str(2**30 - 1), "with_mask", "a b", "closed"])


FRAME_SLOTS = ["7", "1000", "with_mask", "0.5", "14", "33", "closed", "-"]
EVENT_SLOTS = ["7", "1000", "door_open", "-"]
HEADER_SLOTS = ["1", "cam", "3", "0", "-", "-", "-", "-"]


@st.composite
def checksummed_lines(draw):
    """Lines of each kind with valid checksums whose fields are each either fine or odd."""
    kind, slots = draw(st.sampled_from([("F", FRAME_SLOTS), ("E", EVENT_SLOTS), ("H", HEADER_SLOTS), ("X", [])]))
    fields = [draw(tricky) if draw(st.integers(0, 3)) == 0 else good for good in slots]
    if draw(st.integers(0, 9)) == 0:
        fields = fields[:-1] if draw(st.booleans()) else fields + [draw(tricky)]
    body = ",".join([kind, *fields])
    return f"{body}*{sum(body.encode()) % 256:02x}\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(checksummed_lines(), max_size=12))
def test_columnar_field_checks_match_logread(lines):
    """Lines with valid checksums but odd fields: both paths keep and reject exactly the same ones."""
    check_same("".join(lines).encode(), [1 << 16], device_id="cam", boot=1, part=0)
