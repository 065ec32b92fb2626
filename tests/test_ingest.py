"""host.ingest: SD logs of many cameras into DuckDB, never a duplicate, never a lost complete record."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_logread import intact_count

from host.field import db
from host.field.ingest import export_parquet, find_logs, ingest
from host.field.logread import TICKS_PERIOD, format_event, format_frame, format_header

ROOT = Path(__file__).resolve().parents[1]


def boot_lines(device: str, boot: int, records: int, start_ticks: int = 0, step: int = 33, seed: int = 0):
    """(seq, line) for one boot: a boot event then frames, ticks wrapping at 2**30."""
    rng = random.Random(seed)
    lines = [(0, format_event(0, start_ticks, "boot", "reset=normal"))]
    ticks = start_ticks
    for seq in range(1, records):
        ticks += step
        if seq % 50 == 0:
            lines.append((seq, format_event(seq, ticks, "door_open", "score=0.97")))
            continue
        label = "with_mask" if rng.random() < 0.6 else "without_mask"
        lines.append((seq, format_frame(seq, ticks, label, rng.random(), 14, 33, "closed")))
    return lines


def write_card(root: Path, device: str, boots: dict[int, int], per_part: int = 400, **kwargs) -> dict:
    """A card (storage root) with rotated logs; returns {(device, boot, seq): line}."""
    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "tinymask_boot.txt").write_text(str(max(boots)))
    expected = {}
    for boot, count in boots.items():
        lines = boot_lines(device, boot, count, seed=boot, **kwargs)
        for part, start in enumerate(range(0, len(lines), per_part)):
            chunk = lines[start:start + per_part]
            text = format_header(device, boot, part, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7")
            text += "".join(line for _, line in chunk)
            (root / "logs" / f"b{boot:06d}-p{part:03d}.log").write_text(text)
            expected.update({(device, boot, seq): line for seq, line in chunk})
    return expected


def rows(db_path: Path) -> dict:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        result = con.execute("SELECT device_id, boot, seq, count(*) FROM records GROUP BY ALL").fetchall()
    finally:
        con.close()
    return {(d, b, s): n for d, b, s, n in result}


def query(db_path: Path, sql: str, params=None):
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def quiet(_line):
    pass


def test_archive_of_two_cameras_with_rotation_and_boots(tmp_path):
    archive = tmp_path / "archive"
    expected = write_card(archive / "cam-a", "cam-a", {1: 900, 2: 300})
    expected |= write_card(archive / "cam-b", "cam-b", {7: 1000})
    (archive / "cam-a" / "pull-state.json").write_text(json.dumps({"device_id": "cam-a", "files": {}}))
    database = tmp_path / "t.duckdb"
    summary = ingest([archive], database, progress=False, echo=quiet)
    assert len(summary.files) == len(list(archive.rglob("*.log"))) == 3 + 1 + 3
    assert rows(database) == {key: 1 for key in expected}
    assert summary.records_new == len(expected) and summary.problems == 0
    roots = {Path(r) for (r,) in query(database, "SELECT DISTINCT root FROM files")}
    assert roots == {(archive / "cam-a").resolve(), (archive / "cam-b").resolve()}


def test_same_files_twice_and_from_two_places_add_nothing(tmp_path):
    card = tmp_path / "card"
    expected = write_card(card, "cam1", {3: 700})
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    again = ingest([card], database, progress=False, echo=quiet)
    assert {f.status for f in again.files} == {"unchanged"} and again.records_new == 0
    copy = tmp_path / "copy"
    write_card(copy, "cam1", {3: 700})  # the same card pulled into another folder
    third = ingest([copy, next((card / "logs").iterdir())], database, progress=False, echo=quiet)
    assert third.records_new == 0 and third.records_read == len(expected)
    assert rows(database) == {key: 1 for key in expected}


def test_grown_file_adds_only_new_records_and_resumes(tmp_path):
    card = tmp_path / "card"
    log = card / "logs" / "b000001-p000.log"
    log.parent.mkdir(parents=True)
    lines = boot_lines("cam1", 1, 300)
    header = format_header("cam1", 1, 0)
    cut = len(lines[150][1]) // 2  # the card was pulled while a line was half written
    log.write_text(header + "".join(line for _, line in lines[:150]) + lines[150][1][:cut])
    database = tmp_path / "t.duckdb"
    first = ingest([card], database, progress=False, echo=quiet)
    assert first.records_new == 150 and first.problems == 1
    log.write_text(header + "".join(line for _, line in lines))
    second = ingest([card], database, progress=False, echo=quiet)
    assert second.files[0].status == "grown"
    assert second.records_new == 150 and second.records_read == 150  # resumed at the half line
    assert rows(database) == {("cam1", 1, seq): 1 for seq in range(300)}
    assert query(database, "SELECT count(*) FROM problems") == [(0,)]  # the half line is whole now


def test_rewritten_file_is_read_again(tmp_path):
    card = tmp_path / "card"
    write_card(card, "cam1", {1: 100})
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    log = card / "logs" / "b000001-p000.log"
    log.write_text(format_header("cam1", 1, 0) + format_frame(500, 99_000, "with_mask", 0.9, 14, 33))
    summary = ingest([card], database, progress=False, echo=quiet)
    assert summary.files[0].status == "changed" and summary.records_new == 1
    assert len(rows(database)) == 101


def test_power_cut_damage_is_reported_and_complete_records_kept(tmp_path, capsys):
    card = tmp_path / "card"
    expected = write_card(card, "cam1", {4: 500}, per_part=1000)
    log = card / "logs" / "b000004-p000.log"
    data = log.read_bytes()
    damaged_at = data.index(expected[("cam1", 4, 100)].encode())
    damaged = data[:damaged_at + 5] + b"\xff\xfegarbage" + data[damaged_at + 5:]
    log.write_bytes(damaged + b"\x00" * 512 + b"F,500,16533,with_m")
    database = tmp_path / "t.duckdb"
    summary = ingest([card], database, progress=False)
    out = capsys.readouterr().out
    assert rows(database) == {key: 1 for key in expected if key != ("cam1", 4, 100)}
    reasons = [r for (r,) in query(database, 'SELECT reason FROM problems ORDER BY "offset"')]
    assert len(reasons) == 3 and ("non-ASCII" in reasons[0] or "checksum" in reasons[0])
    assert "NUL" in reasons[1] and "truncated" in reasons[2]
    assert summary.problems == 3
    assert f"{log.resolve()}: new, 499 new records, 3 skipped:" in out
    assert f"byte {damaged_at}:" in out


def test_ticks_wrap_is_unwrapped_into_uptime(tmp_path):
    card = tmp_path / "card"
    start = TICKS_PERIOD - 10_000
    write_card(card, "cam1", {1: 1000}, per_part=300, start_ticks=start, step=40)
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    result = query(database, "SELECT seq, ticks_ms, uptime_ms FROM records ORDER BY seq")
    assert [u for _, _, u in result] == [start + 40 * seq for seq, _, _ in result]
    assert any(t < 10_000 for _, t, _ in result)  # the log really wrapped


def test_parts_ingested_out_of_order_get_the_same_uptime(tmp_path):
    card = tmp_path / "card"
    write_card(card, "cam1", {1: 1000}, per_part=300, start_ticks=TICKS_PERIOD - 20_000, step=40)
    in_order = tmp_path / "a.duckdb"
    ingest([card], in_order, progress=False, echo=quiet)
    reversed_db = tmp_path / "b.duckdb"
    for log in sorted((card / "logs").iterdir(), reverse=True):
        ingest([log], reversed_db, progress=False, echo=quiet)
    sql = "SELECT seq, uptime_ms FROM records ORDER BY seq"
    assert query(in_order, sql) == query(reversed_db, sql)


def test_headerless_file_is_attributed_from_its_name_and_card(tmp_path):
    card = tmp_path / "card"
    write_card(card, "cam1", {2: 100})
    broken = card / "logs" / "b000002-p001.log"
    broken.write_text("H,1,cam1,2,1,damaged*00\n" + format_frame(100, 9000, "with_mask", 0.8, 14, 33))
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    assert query(database, "SELECT device_id, boot, part FROM records WHERE seq = 100") == [("cam1", 2, 1)]


def test_headerless_lone_file_is_skipped_with_reason(tmp_path):
    lone = tmp_path / "mystery.log"
    lone.write_text(format_frame(1, 10, "with_mask", 0.8, 14, 33))
    database = tmp_path / "t.duckdb"
    summary = ingest([lone], database, progress=False, echo=quiet)
    assert summary.records_new == 0 and summary.problems == 1
    assert "cannot be told" in query(database, "SELECT reason FROM problems")[0][0]


def test_find_logs_knows_storage_roots(tmp_path):
    card = tmp_path / "card"
    write_card(card, "cam1", {1: 10})
    (card / "captures").mkdir()
    staging = card / ".incoming" / "logs"
    staging.mkdir(parents=True)
    (staging / "b000009-p000.log").write_text("partial")
    logs = find_logs([card])
    assert [log.path.name for log in logs] == ["b000001-p000.log"]
    assert logs[0].root == card.resolve() and logs[0].device_hint is None  # it has a header
    assert (logs[0].boot_hint, logs[0].part_hint) == (1, 0)


def test_parquet_export_partitions_by_device_and_day(tmp_path):
    archive = tmp_path / "archive"
    write_card(archive / "a", "cam-a", {1: 300}, step=400_000)  # 300 frames over 33 hours
    write_card(archive / "b", "cam-b", {5: 200})
    database = tmp_path / "t.duckdb"
    ingest([archive], database, progress=False, echo=quiet)
    out = export_parquet(database, tmp_path / "pq")
    days = sorted(p.name for p in (out / "records" / "device_id=cam-a").iterdir())
    assert days == ["day=b000001-d000", "day=b000001-d001"]
    con = duckdb.connect()
    back = con.execute(
        f"SELECT device_id, count(*) FROM read_parquet('{out}/records/**/*.parquet', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY 1").fetchall()
    assert back == [("cam-a", 300), ("cam-b", 200)]
    assert con.execute(f"SELECT count(*) FROM '{out}/headers.parquet'").fetchall() == [(2,)]


def test_cli_reports_user_errors_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "host.ingest", str(tmp_path / "nowhere"), "--db",
                             str(tmp_path / "t.duckdb")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: no such file or folder; give a pulled archive, a mounted SD card or a .log file"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "host.ingest", str(empty), "--db", str(tmp_path / "t.duckdb")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "no log files" in result.stderr


def test_cli_ingests_and_exports(tmp_path):
    card = tmp_path / "card"
    expected = write_card(card, "cam1", {1: 120})
    result = subprocess.run([sys.executable, "-m", "host.ingest", str(card), "--db", str(tmp_path / "t.duckdb"),
                             "--export-parquet", str(tmp_path / "pq"), "--no-progress"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert f"{len(expected)} new records" in result.stdout and "records/s" in result.stdout
    assert list((tmp_path / "pq" / "records").rglob("*.parquet"))


# -- property: whatever order, repetition and damage, the database holds every intact record once ----

@st.composite
def damaged_cards(draw):
    files = {}
    expected = {}
    for boot in range(1, draw(st.integers(1, 3)) + 1):
        lines = boot_lines("cam1", boot, draw(st.integers(1, 60)), seed=boot)
        per_part = draw(st.integers(5, 40))
        for part, start in enumerate(range(0, len(lines), per_part)):
            chunk = lines[start:start + per_part]
            body = (format_header("cam1", boot, part) + "".join(line for _, line in chunk)).encode()
            cut = draw(st.integers(0, len(body))) if draw(st.integers(0, 3)) == 0 else len(body)
            data = body[:cut]
            if draw(st.booleans()):
                data += b"\x00" * draw(st.integers(1, 64))
            at = draw(st.integers(0, len(data)))
            if draw(st.booleans()):
                data = data[:at] + b"\xfe#" + data[at:]
            files[f"b{boot:06d}-p{part:03d}.log"] = data
            for seq, line in chunk:
                if intact_count(line.encode()[:-1], data):
                    expected[("cam1", boot, seq)] = 1
    order = draw(st.permutations(sorted(files)))
    repeats = draw(st.lists(st.sampled_from(sorted(files)), max_size=3))
    return files, expected, list(order) + repeats


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(damaged_cards())
def test_every_intact_record_lands_exactly_once(tmp_path_factory, case):
    files, expected, order = case
    card = tmp_path_factory.mktemp("card")
    (card / "logs").mkdir()
    (card / "pull-state.json").write_text('{"device_id": "cam1", "files": {}}')  # names the camera
    for name, data in files.items():
        (card / "logs" / name).write_bytes(data)
    database = card / "t.duckdb"
    for name in order:
        ingest([card / "logs" / name], database, progress=False, echo=quiet)
    ingest([card], database, progress=False, echo=quiet)
    assert rows(database) == expected
    uptimes = query(database, "SELECT boot, seq, ticks_ms, uptime_ms FROM records ORDER BY boot, seq")
    assert all(u == t for _, _, t, u in uptimes)  # the generator starts at 0 and never wraps


def test_database_schema_is_keyed_by_device_boot_seq(tmp_path):
    con = db.connect(tmp_path / "x.duckdb")
    columns = [c[0] for c in con.execute("DESCRIBE records").fetchall()]
    con.close()
    assert columns[:4] == ["device_id", "boot", "boot_id", "seq"] and tuple(columns) == db.RECORD_COLUMNS


def test_report_needs_an_existing_database(tmp_path):
    with pytest.raises(Exception, match="no such database"):
        db.connect(tmp_path / "missing.duckdb", create=False)


# -- boot identity, rewrites, damage, schema ----------------------------------------------------------

def run_log(device: str, boot: int, boot_id: str, records: int, part: int = 0, start_ticks: int = 0) -> str:
    return (format_header(device, boot, part, "ab" * 32, "0.2.0", "4.6.0", "openmv_h7", boot_id=boot_id)
            + "".join(line for _, line in boot_lines(device, boot, records, start_ticks=start_ticks, seed=len(boot_id))))


def test_a_wiped_card_restarting_at_boot_1_loses_nothing(tmp_path):
    archive = tmp_path / "archive"
    log = archive / "cam1" / "logs" / "b000001-p000.log"
    log.parent.mkdir(parents=True)
    log.write_text(run_log("cam1", 1, "aaaaaaaaaaaaaaaa", 151))
    database = tmp_path / "t.duckdb"
    ingest([archive], database, progress=False, echo=quiet)
    log.write_text(run_log("cam1", 1, "bbbbbbbbbbbbbbbb", 111))  # wiped card: boot 1 again, another run
    second = ingest([archive], database, progress=False, echo=quiet)
    assert second.files[0].status == "changed" and second.records_new == 111
    assert query(database, "SELECT boot_id, count(*) FROM records GROUP BY 1 ORDER BY 1") == [
        ("aaaaaaaaaaaaaaaa", 151), ("bbbbbbbbbbbbbbbb", 111)]


def test_a_file_rewritten_at_the_same_size_and_time_is_seen(tmp_path):
    import os

    card = tmp_path / "card"
    log = card / "logs" / "b000001-p000.log"
    log.parent.mkdir(parents=True)
    log.write_text(run_log("cam1", 1, "aaaaaaaaaaaaaaaa", 50))
    stat = log.stat()
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    log.write_text(run_log("cam1", 1, "cccccccccccccccc", 50))
    os.utime(log, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert log.stat().st_size == stat.st_size
    again = ingest([card], database, progress=False, echo=quiet)
    assert again.records_new == 50 and len(rows(database)) == 50  # rows() counts by (device, boot, seq)
    assert query(database, "SELECT count(DISTINCT boot_id) FROM records") == [(2,)]


def test_an_unreadable_log_does_not_roll_back_the_others(tmp_path, capsys):
    card = tmp_path / "card"
    expected = write_card(card, "cam1", {1: 100, 2: 100})
    bad = card / "logs" / "b000003-p000.log"
    bad.mkdir()  # a "file" that cannot be read as one (what a damaged FAT entry can look like)
    (bad / "x").write_text("x")
    database = tmp_path / "t.duckdb"
    logs = find_logs([card])
    assert len(logs) == 2  # a folder named *.log is not a log file
    from host.field import ingest as ingest_module

    original = ingest_module._describe

    def describe(path):
        log = original(path)
        if path.name == "b000002-p000.log":
            log.unreadable = "Input/output error"
        return log

    ingest_module._describe = describe
    try:
        summary = ingest([card], database, progress=False)
    finally:
        ingest_module._describe = original
    out = capsys.readouterr().out
    assert {key for key in rows(database)} == {key for key in expected if key[1] == 1}
    assert [f.status for f in summary.files] == ["new", "unreadable"]
    assert "unreadable file: Input/output error" in out
    assert query(database, "SELECT status FROM files ORDER BY path") == [("new",), ("unreadable",)]
    again = ingest([card], database, progress=False, echo=quiet)  # readable again: read now
    assert again.records_new == 100 and len(rows(database)) == 200


def test_a_file_name_that_is_not_utf8_is_ingested(tmp_path):
    import os

    card = tmp_path / "card"
    expected = write_card(card, "cam1", {1: 20})
    folder = os.fsencode(card / "logs")
    os.rename(os.path.join(folder, b"b000001-p000.log"), os.path.join(folder, b"b000001-p000-\xff.log"))
    database = tmp_path / "t.duckdb"
    summary = ingest([card], database, progress=False, echo=quiet)
    assert summary.records_new == len(expected)
    assert "\ufffd" in query(database, "SELECT path FROM files")[0][0]


def test_an_old_or_foreign_database_is_one_line(tmp_path):
    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute("CREATE TABLE records (device_id VARCHAR, boot BIGINT, seq BIGINT)")
    con.close()
    with pytest.raises(Exception, match="ingest the logs again into a new file"):
        db.connect(old, create=False, read_only=True)
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match="an empty file"):
        db.connect(empty, create=False, read_only=True)
    blank = tmp_path / "blank.duckdb"
    duckdb.connect(str(blank)).close()
    with pytest.raises(Exception, match="holds no tinymask tables"):
        db.connect(blank, create=False, read_only=True)


def test_door_events_logged_out_of_time_order_add_no_phantom_hours(tmp_path):
    """Firmware before format 2 stamped the door event later than the frame logged after it."""
    card = tmp_path / "card"
    log = card / "logs" / "b000001-p000.log"
    log.parent.mkdir(parents=True)
    lines = [format_header("cam1", 1, 0, format_version=1), format_event(0, 1000, "boot")]
    ticks = 1000
    for seq in range(1, 200):
        ticks += 33
        if seq % 10 == 0:
            lines.append(format_event(seq, ticks + 25, "door_open", "mask"))  # E,5,2243 then F,6,2218
        else:
            lines.append(format_frame(seq, ticks, "with_mask", 0.9, 14, 33))
    log.write_text("".join(lines))
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    uptimes = [u for (u,) in query(database, "SELECT uptime_ms FROM records ORDER BY seq")]
    assert uptimes == sorted(uptimes) and uptimes[-1] - uptimes[0] <= 199 * 33 + 25


def test_many_one_boot_files_in_one_batch_each_unwrap_alone(tmp_path):
    card = tmp_path / "card"
    (card / "logs").mkdir(parents=True)
    for boot in range(1, 301):
        start = TICKS_PERIOD - 40 if boot % 3 == 0 else boot
        (card / "logs" / f"b{boot:06d}-p000.log").write_text(run_log("cam1", boot, f"{boot:016x}", 2, start_ticks=start))
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    result = query(database, "SELECT boot, ticks_ms, uptime_ms FROM records ORDER BY boot, seq")
    assert len(result) == 600
    for i in range(0, 600, 2):
        (_, t0, u0), (_, _, u1) = result[i], result[i + 1]
        assert u0 == t0 and u1 == u0 + 33  # each run starts at its own ticks, wraps only where it can


def _card_with_a_damaged_part(root: Path) -> None:
    """Boot 3 of cam1 in two parts; the second part's header is damaged, so only its siblings tell its run."""
    (root / "logs").mkdir(parents=True)
    (root / "tinymask_boot.txt").write_text("3")
    lines = [line for _, line in boot_lines("cam1", 3, 10, seed=3)]
    (root / "logs" / "b000003-p000.log").write_text(
        format_header("cam1", 3, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7", boot_id="0123456789abcdef") + "".join(lines[:5]))
    (root / "logs" / "b000003-p001.log").write_text("H,2,cam1,3,1,damaged*00\n" + "".join(lines[5:]))


def test_a_part_ingested_alone_and_then_with_its_card_is_kept_once(tmp_path):
    """Found in review: the lone part's records went in under boot id '-', the card's under the run's id,
    so each was stored twice. The '-' run is folded into the one run the database then knows."""
    card = tmp_path / "card"
    _card_with_a_damaged_part(card)
    alone = tmp_path / "archive" / "cam1"
    (alone / "logs").mkdir(parents=True)
    (alone / "pull-state.json").write_text(json.dumps({"device_id": "cam1", "files": {}}))
    (alone / "logs" / "b000003-p001.log").write_bytes((card / "logs" / "b000003-p001.log").read_bytes())
    reference, database = tmp_path / "ref.duckdb", tmp_path / "t.duckdb"
    ingest([card], reference, progress=False, echo=quiet)
    ingest([alone], database, progress=False, echo=quiet)
    ingest([card], database, progress=False, echo=quiet)
    assert rows(database) == rows(reference) and set(rows(database).values()) == {1} and len(rows(database)) == 10
    sql = "SELECT seq, boot_id, uptime_ms FROM records ORDER BY seq"
    assert query(database, sql) == query(reference, sql)
    assert query(database, "SELECT boot_id, min_seq, max_seq FROM boots") == [("0123456789abcdef", 0, 9)]


def test_records_skipped_for_an_unknown_camera_are_read_once_the_card_tells_it(tmp_path):
    """Found in review: a damaged header's records were skipped, and stayed lost after the card's next
    log told the camera (the file was 'unchanged')."""
    card = tmp_path / "card"
    (card / "logs").mkdir(parents=True)
    (card / "tinymask_boot.txt").write_text("2")
    damaged = card / "logs" / "b000001-p000.log"
    damaged.write_text("H,2,cXm1,1,0,-,-,-,-,0123456789abcdef,-,-*00\n"
                       + "".join(line for _, line in boot_lines("cam1", 1, 5, seed=1)))
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    assert rows(database) == {}
    (card / "logs" / "b000002-p000.log").write_text(
        format_header("cam1", 2, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7") + format_frame(1, 5, "with_mask", 0.9, 1, 2))
    ingest([card], database, progress=False, echo=quiet)
    assert sorted(rows(database)) == [("cam1", 1, s) for s in range(5)] + [("cam1", 2, 1)]
    ingest([card], database, progress=False, echo=quiet)
    assert set(rows(database).values()) == {1}


def test_a_log_linked_from_outside_the_card_is_not_read(tmp_path, capsys):
    """Found in review: a *.log link on the card was followed, and its target's folder became the storage
    root that the report then opened captures under."""
    elsewhere = tmp_path / "elsewhere"
    write_card(elsewhere, "private", {1: 10})
    card = tmp_path / "card"
    write_card(card, "cam1", {1: 10})
    (card / "logs" / "b000002-p000.log").symlink_to(elsewhere / "logs" / "b000001-p000.log")
    database = tmp_path / "t.duckdb"
    ingest([card], database, progress=False, echo=quiet)
    assert {d for d, _, _ in rows(database)} == {"cam1"}
    assert "leads outside" in capsys.readouterr().err
    assert all(str(elsewhere) not in root for (root,) in query(database, "SELECT DISTINCT root FROM files"))


def test_an_export_folder_that_is_a_file_is_refused_before_anything_is_ingested(tmp_path, capsys):
    from host.errors import run_cli
    from host.field import ingest as ingest_module

    card = tmp_path / "card"
    write_card(card, "cam1", {1: 10})
    taken = tmp_path / "afile"
    taken.write_text("mine")
    database = tmp_path / "t.duckdb"
    assert run_cli(ingest_module.main, [str(card), "--db", str(database), "--export-parquet", str(taken)]) == 2
    assert "--export-parquet" in capsys.readouterr().err and not database.exists() and taken.read_text() == "mine"


def test_a_folder_holding_only_a_linked_card_says_so(tmp_path):
    card = tmp_path / "card"
    write_card(card, "cam1", {1: 10})
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "card").symlink_to(card, target_is_directory=True)
    with pytest.raises(Exception, match="mnt/card is a link to a folder, not followed: give it directly"):
        find_logs([tmp_path / "mnt"])


@pytest.mark.parametrize("order", ["old card first", "new card first"])
def test_a_damaged_part_of_another_card_never_joins_an_old_run(tmp_path, order):
    """Found in review of the fix above: a wiped card's damaged part took the old card's run of the same
    boot number, and records were dropped. Only identical shared records make two runs one."""
    old, new = tmp_path / "archive" / "cam1", tmp_path / "archive" / "cam1~card2"
    for folder in (old, new):
        (folder / "logs").mkdir(parents=True)
        (folder / "pull-state.json").write_text(json.dumps({"device_id": "cam1", "files": {}}))
    (old / "logs" / "b000001-p000.log").write_text(
        format_header("cam1", 1, 0, "ab" * 32, "0.1.0", "4.6.0", "openmv_h7", boot_id="1111111111111111")
        + "".join(line for _, line in boot_lines("cam1", 1, 10, seed=1)))
    other = [line for _, line in boot_lines("cam1", 1, 15, start_ticks=777, seed=99)]
    (new / "logs" / "b000001-p001.log").write_text("H,2,cam1,1,1,damaged*00\n" + "".join(other[5:]))
    database = tmp_path / "t.duckdb"
    for folder in ((old, new) if order == "old card first" else (new, old)):
        ingest([folder], database, progress=False, echo=quiet)
    assert query(database, "SELECT boot_id, count(*), min(seq), max(seq) FROM records GROUP BY 1 ORDER BY 1") == [
        ("-", 10, 5, 14), ("1111111111111111", 10, 0, 9)]
