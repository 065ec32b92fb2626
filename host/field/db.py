"""The analytics database that `host.ingest` fills and `host.report` reads (DuckDB, one file).

Records are unique by (device_id, boot_id, seq): `boot_id` is the random id the firmware draws at
every start (log format 2), so a wiped or replaced card, whose boot counter starts again at 1, never
merges two runs. Version-1 logs have no boot id ('-'); their runs are told apart by boot number only.
DuckDB keeps no index for that key (an index over millions of rows would live in memory); ingestion
checks each batch against the small `boots` table (seq range per run) instead, and only boots whose
range overlaps go through an anti-join.

The schema has a version (`meta`). A database from an older tinymask is refused with one line that
says to ingest again into a new file (the logs hold everything; nothing is lost).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from host.errors import UserError

DEFAULT_DB = Path("tinymask.duckdb")
MEMORY_LIMIT = "512MB"  # bounded whatever the number of records; DuckDB spills beyond it

SCHEMA_VERSION = 2
TABLES = ("meta", "files", "headers", "boots", "records", "problems", "configs")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS files (
    path VARCHAR PRIMARY KEY,      -- absolute path of the log file as ingested (undecodable bytes as U+FFFD)
    root VARCHAR,                  -- storage root it came from (holds logs/ and captures/)
    device_id VARCHAR,
    boot BIGINT,
    boot_id VARCHAR,
    part BIGINT,
    size BIGINT,                   -- file size when last read
    mtime DOUBLE,
    head_sha256 VARCHAR,           -- sha256 of the first 4 KiB: a file rewritten in place is seen even at equal size
    consumed BIGINT,               -- bytes up to the last complete line: the next read resumes here
    prefix_sha256 VARCHAR,         -- sha256 of those bytes: a grown file must still start with them
    records BIGINT,                -- valid records read from the file (all reads)
    problems BIGINT,
    status VARCHAR,                -- new, grown, changed (rewritten: read again), unreadable
    ingested_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS headers (
    device_id VARCHAR,
    boot BIGINT,
    boot_id VARCHAR,
    part BIGINT,
    format_version INTEGER,
    model_sha256 VARCHAR,
    firmware_version VARCHAR,
    omv_firmware VARCHAR,
    board VARCHAR,
    rtc VARCHAR,                   -- UTC wall clock when the part started, if the camera's RTC was set
    rtc_ticks BIGINT,              -- ticks_ms read with it
    path VARCHAR,
    PRIMARY KEY (device_id, boot_id, boot, part)
);
CREATE TABLE IF NOT EXISTS boots (  -- one row per run: what ingestion needs to add the next batch
    device_id VARCHAR,
    boot BIGINT,
    boot_id VARCHAR,
    min_seq BIGINT,
    max_seq BIGINT,
    last_ticks BIGINT,             -- ticks_ms and uptime_ms of the record at max_seq
    last_uptime BIGINT,
    root VARCHAR,                  -- the card or archive folder the run was first read from
    PRIMARY KEY (device_id, boot_id, boot)
);
CREATE TABLE IF NOT EXISTS records (
    device_id VARCHAR NOT NULL,
    boot BIGINT NOT NULL,
    boot_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    part BIGINT,
    kind VARCHAR NOT NULL,         -- 'F' frame, 'E' event
    ticks_ms BIGINT NOT NULL,      -- as logged (wraps at 2**30)
    uptime_ms BIGINT,              -- ms since boot: ticks_diff steps in seq order, never decreasing
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
CREATE TABLE IF NOT EXISTS configs (  -- the camera's config.json found beside its logs (tools.pull archives it)
    root VARCHAR PRIMARY KEY,
    device_id VARCHAR,
    threshold DOUBLE,
    labels VARCHAR,                -- JSON list, in the model's output order
    positive_label VARCHAR,
    model_sha256 VARCHAR,
    problem VARCHAR                -- why it could not be used, or NULL
);
"""

RECORD_COLUMNS = ("device_id", "boot", "boot_id", "seq", "part", "kind", "ticks_ms", "uptime_ms", "label",
                  "score", "infer_ms", "frame_ms", "door", "image", "event", "detail", "file", "offset")


def path_of(con: duckdb.DuckDBPyConnection) -> str:
    """The file the connection's database lives in (for messages that name it)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return str(row[0]) if row and row[0] else "..."


def connect(path: Path | str, create: bool = True, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; --db takes a database file, for example {path / DEFAULT_DB}")
    if not create and not path.exists():
        raise UserError(f"{path}: no such database; run `python -m host.ingest SOURCE --db {path}` first")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size == 0:
        raise UserError(f"{path}: an empty file, not a tinymask database; remove it and run "
                        f"`python -m host.ingest SOURCE --db {path}`")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot open the database ({first}); is another ingest running, "
                        "or is it not a DuckDB file?") from None
    try:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("SET preserve_insertion_order = false")
        check_version(con, path, read_only)
    except BaseException:
        con.close()
        raise
    return con


def check_version(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
    """Create the schema in a new database; refuse one of another schema version with one line."""
    tables = {name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    if not tables:
        if read_only:
            raise UserError(f"{path}: the database holds no tinymask tables; run "
                            f"`python -m host.ingest SOURCE --db {path}` first")
        con.execute(SCHEMA)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        return
    version = None
    if "meta" in tables:
        row = one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
        version = int(row[0]) if row and str(row[0]).isdigit() else None
    if version != SCHEMA_VERSION:
        found = "an older tinymask (no schema version)" if version is None else f"schema version {version}"
        raise UserError(f"{path}: database of {found}, this tinymask uses version {SCHEMA_VERSION}; ingest "
                        f"the logs again into a new file (`python -m host.ingest ARCHIVE --db new.duckdb`): "
                        "the logs hold everything, nothing is lost")
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise UserError(f"{path}: tables {', '.join(missing)} are missing; ingest the logs again into a new file")


def one(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    """The first row of a query (its result fully read: DuckDB 2 keeps a half-read result open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
