"""The registry's databases: SQLite files and PostgreSQL, opened as the registry needs them.

A SQLite registry runs in write-ahead-log mode, and its writers take the database lock up
front (``BEGIN IMMEDIATE``), so that reading the latest version number and inserting the next
one cannot interleave with another process doing the same. PostgreSQL locks the model's row
instead (see ``Registry``).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url

from modelpilot.errors import MissingExtra

WRITE_OPTION = "modelpilot_write"
"""Execution option of a connection that will write (a SQLite one then begins IMMEDIATE)."""


COMPANION_WAL_BYTES = 4 << 20
"""About how large a companion database's write-ahead log grows (see ``sqlite_engine``).

A companion (the inference log) is made with SQLite's default pages, 4 KiB: its rows are
small since the log's contents went to segment files (``log_segments``). With the 64 KiB pages
it was made with before, for rows of a hundred kilobytes and more, each commit (about one a
second) wrote several pages whatever it held, and the log's write-ahead log grew to 64 MB
(about 7 MB every 30 s at 300 requests/s), whatever ``MODELPILOT_INFERENCE_LOG_MAX_ROWS``. Such
a file keeps its pages, and is checkpointed every 64 of them instead."""


def sqlite_engine(
    path: Path,
    page_size: int | None = None,
    durable: bool = True,
    wal_bytes: int | None = None,
) -> Engine:
    """An engine on the SQLite file ``path``; ``page_size`` applies when it creates the file.

    ``durable``: each commit waits for the disk (else only checkpoints do, which loses no
    commit when the process dies, only when the machine does).

    ``wal_bytes``: about how large the write-ahead log may grow before it is checkpointed,
    whatever the file's page size (SQLite's default, 1,000 pages, is 4 MB of 4 KiB pages but
    64 MB of 64 KiB ones), and what it is cut back to once checkpointed past it (else it keeps
    the largest size it ever had)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if page_size is not None:  # only a new file takes it (before WAL writes the header)
            cursor.execute(f"PRAGMA page_size={int(page_size)}")
        _write_ahead(cursor)
        if wal_bytes is not None:
            (size,) = cursor.execute("PRAGMA page_size").fetchone()
            cursor.execute(f"PRAGMA wal_autocheckpoint={max(int(wal_bytes) // int(size), 1)}")
            cursor.execute(f"PRAGMA journal_size_limit={int(wal_bytes)}")
        if not durable:
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _write_ahead(cursor: Any, seconds: float = 30.0) -> None:
    """Switch the file to write-ahead logging (a no-op once it is).

    Processes opening a new file at once (``serve --workers``) each switch it, and SQLite may
    refuse a switch at once, "database is locked", without waiting as it waits for other locks
    (one start in about forty of eight processes did): so try again, a while."""
    deadline = time.monotonic() + seconds
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


CONNECT_TIMEOUT_SECONDS = 10
"""How long a connection to PostgreSQL may take to open, unless the URL says otherwise
(``?connect_timeout=N``). libpq waits for ever by default: a database host that drops packets
rather than refusing them (a firewall, a host gone from the network) held every request that
needed the registry, and the server's alias refresh, as long as the kernel's TCP retries
(minutes); with a bound they fail as an outage, 503 and one log line a minute. A connection
already open is bounded too: see ``silent_postgres``."""


def _connect_args(url: URL) -> dict[str, Any]:
    return {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def _postgres_engine(url: URL, pool_size: int) -> Engine:
    """An engine on PostgreSQL whose connections wait for a silent server no longer than
    ``silent_postgres`` says."""
    from modelpilot.registry.silent_postgres import Silence, connect, link_bounds

    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={**_connect_args(url), **link_bounds(set(url.query))},
    )
    silence = Silence()

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return connect(silence, tuple(cargs), dict(cparams))

    return engine


def postgres_engine(text: str) -> Engine:
    """An engine on the PostgreSQL database at the URL ``text`` (with the psycopg driver)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingExtra("psycopg", "postgres") from None
    return _postgres_engine(make_url(text).set(drivername="postgresql+psycopg"), pool_size=5)


def companion_engine(url: URL, name: str) -> Engine:
    """A database for another store beside the registry at ``url``: see
    ``Registry.companion_engine``."""
    if url.get_backend_name() == "postgresql":
        engine = _postgres_engine(url, pool_size=2)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            dbapi_conn.commit()  # else the pool's rollback would undo it

        return engine
    return sqlite_engine(
        Path(str(url.database)).with_name(f"{name}.db"),
        durable=False,
        wal_bytes=COMPANION_WAL_BYTES,
    )


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT into ``table`` in the connection's dialect, which can skip conflicts."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
