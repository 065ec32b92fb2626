"""The analytics database that `host.ingest` fills and `host.report` reads (DuckDB, one file).

Records are unique by (device_id, boot, seq): the log format makes that triple identify a record,
so ingesting a file twice, a file that grew, or the same card from two places adds no duplicate.
DuckDB keeps no index for that key (an index over millions of rows would live in memory); ingestion
checks the seq range of each batch against the table instead, which zone maps make cheap.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from host.errors import UserError

DEFAULT_DB = Path("tinymask.duckdb")
MEMORY_LIMIT = "512MB"  # bounded whatever the number of records; DuckDB spills beyond it

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path VARCHAR PRIMARY KEY,      -- absolute path of the log file as ingested
    root VARCHAR,                  -- storage root it came from (holds logs/ and captures/)
    device_id VARCHAR,
    boot BIGINT,
    part BIGINT,
    size BIGINT,                   -- file size when last read
    mtime DOUBLE,
    consumed BIGINT,               -- bytes up to the last complete line: the next read resumes here
    prefix_sha256 VARCHAR,         -- sha256 of those bytes: a grown file must still start with them
    records BIGINT,                -- valid records read from the file (all reads)
    problems BIGINT,
    ingested_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS headers (
    device_id VARCHAR,
    boot BIGINT,
    part BIGINT,
    format_version INTEGER,
    model_sha256 VARCHAR,
    firmware_version VARCHAR,
    omv_firmware VARCHAR,
    board VARCHAR,
    path VARCHAR,
    PRIMARY KEY (device_id, boot, part)
);
CREATE TABLE IF NOT EXISTS records (
    device_id VARCHAR NOT NULL,
    boot BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    part BIGINT,
    kind VARCHAR NOT NULL,         -- 'F' frame, 'E' event
    ticks_ms BIGINT NOT NULL,      -- as logged (wraps at 2**30)
    uptime_ms BIGINT,              -- ticks_ms unwrapped in seq order: ms since boot
    label VARCHAR,
    score DOUBLE,
    infer_ms BIGINT,
    frame_ms BIGINT,
    door VARCHAR,
    image VARCHAR,
    event VARCHAR,
    detail VARCHAR,
    file VARCHAR,                  -- files.path
    "offset" BIGINT                -- byte offset of the line in that file
);
CREATE TABLE IF NOT EXISTS problems (
    path VARCHAR,
    "offset" BIGINT,
    reason VARCHAR
);
"""

RECORD_COLUMNS = ("device_id", "boot", "seq", "part", "kind", "ticks_ms", "uptime_ms", "label", "score",
                  "infer_ms", "frame_ms", "door", "image", "event", "detail", "file", "offset")


def connect(path: Path | str, create: bool = True, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if not create and not path.exists():
        raise UserError(f"{path}: no such database; run `python -m host.ingest SOURCE --db {path}` first")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise UserError(f"{path}: cannot open the database ({exc}); is another ingest running?") from None
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET preserve_insertion_order = false")
    if not read_only:
        con.execute(SCHEMA)
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    """The first row of a query (its result fully read: DuckDB 2 keeps a half-read result open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
