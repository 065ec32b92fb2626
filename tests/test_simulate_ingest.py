"""End to end: the simulated board's SD card goes through the real host ingestion (DuckDB)."""

from __future__ import annotations

import duckdb
from simboard import MASK, NO_MASK, read_log, run, sequence

from host.sim import Faults


def test_simulated_card_ingests_completely_and_idempotently(tmp_path):
    ingest = __import__("host.field.ingest", fromlist=["ingest"])
    frames = sequence((MASK, 80), (NO_MASK, 20), (MASK, 60))
    # a watchdog reset gives two boots; the ticks wrap during the first; small parts rotate
    result = run(tmp_path, frames, {"log_max_bytes": 4096, "wdt_timeout_ms": 1000, "camera_skip_ms": 0},
                 faults=Faults(hang_at=120), start_ticks_ms=(1 << 30) - 500)
    parsed = read_log(result)
    assert len(result.log_files()) >= 3 and {h.boot for h in parsed.headers} == {1, 2}
    db = tmp_path / "t.duckdb"
    ingest.ingest([result.sd_dir], db, progress=False, echo=lambda line: None)
    ingest.ingest([result.sd_dir], db, progress=False, echo=lambda line: None)  # again: no duplicates
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT boot, seq, kind, uptime_ms FROM records ORDER BY boot, seq").fetchall()
        doors = con.execute("SELECT count(*) FROM records WHERE event = 'door_open'").fetchone()[0]
    finally:
        con.close()
    assert len(rows) == len(parsed.records)
    assert [(b, s, k) for b, s, k, _ in rows] == sorted((r.boot, r.seq, r.kind) for r in parsed.records)
    for boot in (1, 2):
        uptimes = [u for b, _, _, u in rows if b == boot]
        assert uptimes == sorted(uptimes)  # unwrapped across the 2**30 wrap
    assert doors == sum(1 for r in parsed.records if r.event == "door_open") >= 2
