"""The report's figures, computed in SQL: the database does the work, Python sees only aggregates.

Every function takes a connection on which `select_records` made the temporary view `sel` (the
records the report covers) and returns plain JSON-able data. Nothing here grows with the number of
records except through DuckDB, whose memory is capped (host.field.db).

Time axis: the camera's clock is not trustworthy unless something set it, and the records carry only
`ticks_ms` since boot, so the report's time is "hours since boot" and, across boots, a per-device
timeline that puts boots back to back. When a boot's log header carried the RTC (tools.deploy sets
it from the host's UTC clock), that boot's wall-clock start is known too (`boot_clocks`).
"""

from __future__ import annotations

import datetime

import duckdb

from host.errors import UserError
from host.field import db
from host.field.logread import ticks_diff

HOUR_MS = 3_600_000
GAP_BUCKET_MS = 10_000  # a stretch of 10 s without any record counts as a gap in the data
MAX_SERIES_POINTS = 400
RTC_SET_FROM_YEAR = 2024  # as firmware/tmlog.py: an earlier year is the RTC's reset value (never set)
UNSET_CLOCK_NOTE = "times are uptime since boot: the camera's clock was not set"
TROUBLE_EVENTS = ("error", "camera_error", "model_error", "config_error", "sd_full", "capture_error", "watchdog")


def select_records(con: duckdb.DuckDBPyConnection, device: str | None, since_boot: int | None) -> None:
    """Make the view `sel`: the records of one device (or all) from boot `since_boot` on."""
    total = db.one(con, "SELECT count(*) FROM records")[0]
    if total == 0:
        raise UserError(f"the database holds no records; run `python -m host.ingest SOURCE --db {db.path_of(con)}` first")
    if device is not None:
        known = [d for (d,) in con.execute("SELECT DISTINCT device_id FROM records ORDER BY 1").fetchall()]
        if device not in known:
            raise UserError(f"--device {device}: no such camera in the database; known: {', '.join(known)}")
    conditions = ["TRUE"]
    if device is not None:
        conditions.append(f"device_id = '{device.replace(chr(39), chr(39) * 2)}'")
    if since_boot is not None:
        conditions.append(f"boot >= {int(since_boot)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW sel AS SELECT * FROM records WHERE {' AND '.join(conditions)}")
    if db.one(con, "SELECT count(*) FROM sel")[0] == 0:
        raise UserError(f"no records from boot {since_boot} on" + (f" for {device}" if device else "")
                        + "; try an earlier --since")
    # each boot's place on its device's timeline: boots back to back, in whole hours
    con.execute("""
        CREATE OR REPLACE TEMP TABLE boot_offsets AS
        SELECT device_id, boot, hours,
               coalesce(sum(hours) OVER (PARTITION BY device_id ORDER BY boot
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS offset_h
        FROM (SELECT device_id, boot, max(uptime_ms) // 3600000 + 1 AS hours FROM sel GROUP BY ALL)""")


def rows(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    result = con.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def summary(con) -> dict:
    s = rows(con, """
        SELECT count(DISTINCT device_id) AS devices, count(DISTINCT (device_id, boot_id, boot)) AS boots,
               count(*) FILTER (WHERE kind = 'F') AS frames, count(*) FILTER (WHERE kind = 'E') AS events,
               count(image) AS captured_frames,
               count(*) FILTER (WHERE event = 'door_open') AS door_openings,
               min(boot) AS first_boot, max(boot) AS last_boot
        FROM sel""")[0]
    s["hours_logged"] = round(db.one(con, "SELECT coalesce(sum(span), 0) / 3.6e6 FROM "
                                     "(SELECT max(uptime_ms) - min(uptime_ms) AS span FROM sel GROUP BY device_id, boot_id, boot)")[0], 3)
    s["labels"] = rows(con, "SELECT label, count(*) AS frames FROM sel WHERE kind = 'F' GROUP BY ALL ORDER BY 1")
    s["devices_list"] = rows(con, """
        SELECT device_id, count(DISTINCT (boot_id, boot)) AS boots, count(*) FILTER (WHERE kind = 'F') AS frames,
               min(boot) AS first_boot, max(boot) AS last_boot FROM sel GROUP BY ALL ORDER BY 1""")
    s["runs_per_boot_number"] = rows(con, """
        SELECT device_id, boot, count(DISTINCT boot_id) AS runs FROM sel GROUP BY ALL HAVING count(DISTINCT boot_id) > 1
        ORDER BY 1, 2 LIMIT 100""")  # a wiped or replaced card: its boot counter started again
    s["models"] = rows(con, """
        SELECT DISTINCT h.device_id, h.boot, h.model_sha256, h.firmware_version, h.omv_firmware, h.board
        FROM headers h JOIN (SELECT DISTINCT device_id, boot FROM sel) b USING (device_id, boot)
        WHERE h.part = (SELECT min(part) FROM headers h2 WHERE h2.device_id = h.device_id AND h2.boot = h.boot)
        ORDER BY 1, 2""")
    s["skipped"] = db.one(con, """
        SELECT count(*) FROM problems p JOIN files f ON f.path = p.path
        WHERE f.device_id IN (SELECT DISTINCT device_id FROM sel) OR f.device_id IS NULL""")[0]
    return s


def labels(con) -> list[str]:
    return [label for (label,) in con.execute(
        "SELECT DISTINCT label FROM sel WHERE kind = 'F' AND label IS NOT NULL ORDER BY 1").fetchall()]


def per_hour(con) -> list[dict]:
    """Frames, decisions (frames per predicted label) and door openings for each hour since boot."""
    base = rows(con, """
        SELECT s.device_id, s.boot, s.uptime_ms // 3600000 AS hour,
               any_value(o.offset_h) + s.uptime_ms // 3600000 AS timeline_hour,
               count(*) FILTER (WHERE kind = 'F') AS frames,
               count(*) FILTER (WHERE event = 'door_open') AS door_openings
        FROM sel s JOIN boot_offsets o USING (device_id, boot)
        GROUP BY s.device_id, s.boot, hour ORDER BY 1, 2, 3""")
    decisions = con.execute("""
        SELECT device_id, boot, uptime_ms // 3600000 AS hour, label, count(*)
        FROM sel WHERE kind = 'F' AND label IS NOT NULL GROUP BY ALL""").fetchall()
    by_key = {(r["device_id"], r["boot"], r["hour"]): r for r in base}
    for row in base:
        row["decisions"] = {}
    for device, boot, hour, label, count in decisions:
        by_key[(device, boot, hour)]["decisions"][label] = count
    return base


def series(con) -> list[dict]:
    """FPS and inference time over the timeline, in buckets sized to give a few hundred points."""
    span_h = db.one(con, "SELECT max(offset_h + hours) FROM boot_offsets")[0] or 1
    bucket_ms = max(60_000, -(-int(span_h) * HOUR_MS // MAX_SERIES_POINTS))
    out = rows(con, f"""
        SELECT s.device_id, s.boot, (o.offset_h * 3600000 + s.uptime_ms) // {bucket_ms} AS bucket,
               count(*) AS frames,
               1000.0 / nullif(avg(frame_ms), 0) AS loop_fps,
               avg(infer_ms) AS infer_ms_mean,
               approx_quantile(infer_ms, 0.95) AS infer_ms_p95,
               avg(frame_ms) AS frame_ms_mean
        FROM sel s JOIN boot_offsets o USING (device_id, boot)
        WHERE kind = 'F'
        GROUP BY ALL ORDER BY 1, 3""")
    for row in out:
        row["timeline_hour"] = row.pop("bucket") * bucket_ms / HOUR_MS
        row["throughput_fps"] = row["frames"] * 1000.0 / bucket_ms
    return out


def distributions(con) -> dict:
    """Histograms (value, count) of per-frame FPS (1000 / frame_ms) and inference time."""
    infer = _histogram(con, "infer_ms", bins=60)
    fps = _histogram(con, "1000.0 / nullif(frame_ms, 0)", bins=60)
    stats = rows(con, """
        SELECT avg(infer_ms) AS infer_ms_mean, approx_quantile(infer_ms, 0.5) AS infer_ms_median,
               approx_quantile(infer_ms, 0.95) AS infer_ms_p95, max(infer_ms) AS infer_ms_max,
               1000.0 / nullif(avg(frame_ms), 0) AS fps_mean,
               1000.0 / nullif(approx_quantile(frame_ms, 0.5), 0) AS fps_median,
               avg(frame_ms) AS frame_ms_mean
        FROM sel WHERE kind = 'F'""")[0]
    return {"infer_ms": infer, "fps": fps, "stats": stats}


def _histogram(con, expression: str, bins: int) -> list[dict]:
    lo, hi = db.one(con, f"SELECT min({expression}), max({expression}) FROM sel WHERE kind = 'F'")
    if lo is None:
        return []
    width = max((hi - lo) / bins, 1e-9) if hi > lo else 1.0
    return rows(con, f"""
        SELECT ({lo} + least(floor(({expression} - {lo}) / {width}), {bins - 1}) * {width})::DOUBLE AS lower,
               {width}::DOUBLE AS width, count(*) AS count
        FROM sel WHERE kind = 'F' AND {expression} IS NOT NULL GROUP BY 1 ORDER BY 1""")


def score_histograms(con, bins: int = 50) -> dict:
    """Per predicted class: how many frames fell in each score bin of width 1/bins."""
    out: dict[str, list[int]] = {}
    for label, b, count in con.execute(f"""
            SELECT label, least(floor(score * {bins}), {bins - 1})::INTEGER AS b, count(*)
            FROM sel WHERE kind = 'F' AND score IS NOT NULL GROUP BY ALL""").fetchall():
        out.setdefault(label, [0] * bins)[b] = count
    return dict(sorted(out.items()))


def doors(con, listed: int = 500) -> dict:
    """Door openings, what triggered them (the event's reason and the frame that opened), and closings."""
    # The frame that opened the door: format 2 logs it just before its door event (seq - 1), format 1
    # (no boot id, "-") just after it (seq + 1). Runs are (device, boot id, boot): a wiped card repeats
    # boot numbers but never boot ids.
    openings = rows(con, f"""
        WITH d AS (
            SELECT device_id, boot_id, boot, seq, uptime_ms, event, detail,
                   lead(event) OVER w AS next_event, lead(uptime_ms) OVER w AS next_ms,
                   lead(detail) OVER w AS next_detail
            FROM sel WHERE event IN ('door_open', 'door_close')
            WINDOW w AS (PARTITION BY device_id, boot_id, boot ORDER BY seq))
        SELECT d.device_id, d.boot, d.seq, d.uptime_ms, d.detail AS reason,
               f.label AS trigger_label, f.score AS trigger_score,
               CASE WHEN d.next_event = 'door_close' THEN d.next_ms - d.uptime_ms END AS open_ms,
               CASE WHEN d.next_event = 'door_close' THEN d.next_detail END AS closed_by
        FROM d LEFT JOIN sel f ON f.device_id = d.device_id AND f.boot_id = d.boot_id AND f.boot = d.boot
                              AND f.seq = d.seq + CASE WHEN d.boot_id = '-' THEN 1 ELSE -1 END AND f.kind = 'F'
        WHERE d.event = 'door_open'
        ORDER BY d.device_id, d.boot, d.seq DESC LIMIT {listed}""")
    totals = rows(con, """
        SELECT count(*) FILTER (WHERE event = 'door_open') AS openings,
               count(*) FILTER (WHERE event = 'door_close') AS closings FROM sel""")[0]
    reasons = rows(con, """
        SELECT event, coalesce(detail, '-') AS reason, count(*) AS count FROM sel
        WHERE event IN ('door_open', 'door_close') GROUP BY ALL ORDER BY 1 DESC, 3 DESC""")
    durations = rows(con, """
        SELECT avg(open_ms) AS mean_open_ms, max(open_ms) AS max_open_ms FROM (
            SELECT CASE WHEN lead(event) OVER w = 'door_close' THEN lead(uptime_ms) OVER w - uptime_ms END AS open_ms,
                   event
            FROM sel WHERE event IN ('door_open', 'door_close')
            WINDOW w AS (PARTITION BY device_id, boot_id, boot ORDER BY seq)) WHERE event = 'door_open'""")[0]
    return {**totals, **durations, "reasons": reasons, "recent": openings}


def least_confident(con, threshold: float, limit: int = 24, captured: bool = False) -> list[dict]:
    """Frames whose score sat closest to the decision threshold, with where their image is, if captured;
    `captured`: only frames the camera captured."""
    return rows(con, f"""
        SELECT s.device_id, s.boot, s.seq, s.uptime_ms, s.label, s.score, s.door, s.image,
               abs(s.score - {float(threshold)}) AS margin, f.root
        FROM sel s LEFT JOIN files f ON f.path = s.file
        WHERE s.kind = 'F' AND s.score IS NOT NULL {"AND s.image IS NOT NULL" if captured else ""}
        ORDER BY margin, s.device_id, s.boot, s.seq LIMIT {int(limit)}""")


def captured_frames(con, limit: int) -> list[dict]:
    return rows(con, f"""
        SELECT s.device_id, s.boot, s.seq, s.label, s.score, s.image, f.root
        FROM sel s LEFT JOIN files f ON f.path = s.file
        WHERE s.kind = 'F' AND s.image IS NOT NULL ORDER BY 1, 2, 3 LIMIT {int(limit)}""")


def gaps(con) -> dict:
    """Where data is missing: reboots, boot numbers never seen, lost records, silent stretches, faults."""
    boots = rows(con, """
        SELECT s.device_id, s.boot, s.boot_id, count(*) AS records, count(*) FILTER (WHERE kind = 'F') AS frames,
               min(seq) AS first_seq, max(seq) AS last_seq,
               max(seq) - min(seq) + 1 - count(*) AS missing_records,
               min(uptime_ms) AS start_ms, max(uptime_ms) AS end_ms,
               any_value(o.offset_h) AS timeline_start_h,
               count(DISTINCT part) AS parts,
               max(detail) FILTER (WHERE event = 'boot') AS boot_detail,
               count(*) FILTER (WHERE event IN ('error', 'camera_error', 'model_error', 'config_error',
                                                'sd_full', 'capture_error', 'watchdog')) AS faults
        FROM sel s JOIN boot_offsets o USING (device_id, boot) GROUP BY s.device_id, s.boot, s.boot_id
        ORDER BY 1, 2, min(s.file), 3""")
    clocks = boot_clocks(con)
    for b in boots:
        b["started_utc"] = clocks.get((b["device_id"], b["boot_id"], b["boot"]))
    missing_boots = []
    for device in sorted({b["device_id"] for b in boots}):
        count, listed = _absent(sorted({b["boot"] for b in boots if b["device_id"] == device}))
        if count:
            missing_boots.append({"device_id": device, "boots": listed, "count": count})
    silent = _silent_stretches(con)
    faults = rows(con, f"""
        SELECT device_id, boot, seq, uptime_ms, event, detail FROM sel
        WHERE event IN {TROUBLE_EVENTS} ORDER BY 1, 2, 3 LIMIT 200""")
    fault_counts = rows(con, f"""
        SELECT event, count(*) AS count FROM sel WHERE event IN {TROUBLE_EVENTS} GROUP BY 1 ORDER BY 2 DESC""")
    skipped = rows(con, """
        SELECT p.path, count(*) AS count, min(p."offset") AS first_offset, any_value(p.reason) AS example
        FROM problems p LEFT JOIN files f ON f.path = p.path
        WHERE f.device_id IS NULL OR f.device_id IN (SELECT DISTINCT device_id FROM sel)
        GROUP BY 1 ORDER BY 1 LIMIT 200""")
    return {"boots": boots, "missing_boots": missing_boots, "silent": silent, "faults": faults,
            "fault_counts": fault_counts, "skipped_by_file": skipped, "gap_bucket_s": GAP_BUCKET_MS / 1000}


def boot_clocks(con) -> dict[tuple, str]:
    """{(device_id, boot_id, boot): UTC wall clock of the boot's first record, 'YYYY-MM-DDTHH:MM:SSZ'}
    for the selected boots whose log header carried the RTC (the lowest such part).

    The header's rtc was read together with ticks_ms = rtc_ticks; the first record of that part has
    ticks t0 and uptime u0, so its wall clock is rtc + ticks_diff(t0, rtc_ticks) (ticks wrap at 2**30),
    and the boot's first record (uptime start_ms) is (u0 - start_ms) earlier. Boots without an RTC,
    or with one before 2024 (never set) or an impossible date, are left out: their times are uptime."""
    found = con.execute("""
        WITH h AS (
            SELECT device_id, boot_id, boot, part, rtc, rtc_ticks FROM headers
            WHERE rtc IS NOT NULL AND rtc_ticks IS NOT NULL
              AND (device_id, boot_id, boot) IN (SELECT DISTINCT device_id, boot_id, boot FROM sel)
            QUALIFY row_number() OVER (PARTITION BY device_id, boot_id, boot ORDER BY part) = 1),
        firsts AS (
            SELECT device_id, boot_id, boot, part, arg_min(ticks_ms, seq) AS ticks, arg_min(uptime_ms, seq) AS uptime
            FROM sel WHERE (device_id, boot_id, boot, part) IN (SELECT device_id, boot_id, boot, part FROM h)
            GROUP BY ALL),
        starts AS (SELECT device_id, boot_id, boot, min(uptime_ms) AS start_ms FROM sel GROUP BY ALL)
        SELECT h.device_id, h.boot_id, h.boot, h.rtc, h.rtc_ticks, f.ticks, f.uptime, s.start_ms
        FROM h JOIN firsts f USING (device_id, boot_id, boot, part) JOIN starts s USING (device_id, boot_id, boot)
        """).fetchall()
    out = {}
    for device, boot_id, boot, rtc, rtc_ticks, ticks, uptime, start_ms in found:
        try:
            clock = datetime.datetime.strptime(rtc, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue  # e.g. month 13: the parser checked only the shape
        if clock.year < RTC_SET_FROM_YEAR:
            continue
        first_ms = ticks_diff(int(ticks), int(rtc_ticks)) - (int(uptime) - int(start_ms))
        try:
            started = clock + datetime.timedelta(milliseconds=first_ms)
        except OverflowError:
            continue
        started = (started + datetime.timedelta(milliseconds=500)).replace(microsecond=0)  # to the nearest second
        out[(device, boot_id, boot)] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def clock_summary(boots: list[dict]) -> dict:
    """How many boots have a wall-clock start; the note the report shows for the others."""
    with_clock = sum(b.get("started_utc") is not None for b in boots)
    without = len(boots) - with_clock
    return {"boots_with_clock": with_clock, "boots_without_clock": without,
            "note": UNSET_CLOCK_NOTE if without else None}


def _absent(seen: list[int], listed: int = 100) -> tuple[int, list[int]]:
    """Boot numbers between the first and last seen that never appear: how many, and the first `listed`.
    Counted from the gaps, so a 12-digit boot number after boot 1 costs nothing."""
    count, numbers = 0, []
    for before, after in zip(seen[:-1], seen[1:]):
        count += after - before - 1
        numbers.extend(range(before + 1, min(after, before + 1 + listed - len(numbers))))
    return count, numbers


def configs(con) -> list[dict]:
    """The camera config.json archived beside the logs of the selected cameras (host.ingest reads it)."""
    return rows(con, """
        SELECT c.root, coalesce(c.device_id, any_value(f.device_id)) AS device_id, c.threshold, c.labels,
               c.positive_label, c.model_sha256, c.problem
        FROM configs c LEFT JOIN files f ON f.root = c.root
        GROUP BY c.root, c.device_id, c.threshold, c.labels, c.positive_label, c.model_sha256, c.problem
        HAVING coalesce(c.device_id, any_value(f.device_id)) IN (SELECT DISTINCT device_id FROM sel)
        ORDER BY 2, 1""")


def _silent_stretches(con, limit: int = 100) -> list[dict]:
    """Runs of 10 s buckets without a single record inside a boot (log off, card out, camera down)."""
    buckets = con.execute(f"""
        SELECT device_id, boot, list(DISTINCT bucket ORDER BY bucket)
        FROM (SELECT device_id, boot, boot_id, uptime_ms // {GAP_BUCKET_MS} AS bucket FROM sel)
        GROUP BY device_id, boot, boot_id ORDER BY 1, 2
        """).fetchall()
    stretches = []
    for device, boot, present in buckets:
        for before, after in zip(present[:-1], present[1:]):
            if after - before > 1:
                stretches.append({"device_id": device, "boot": boot,
                                  "from_ms": (before + 1) * GAP_BUCKET_MS, "to_ms": after * GAP_BUCKET_MS,
                                  "seconds": (after - before - 1) * GAP_BUCKET_MS / 1000})
    stretches.sort(key=lambda s: -s["seconds"])
    return stretches[:limit]
