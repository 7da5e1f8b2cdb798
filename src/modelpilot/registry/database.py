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


def sqlite_engine(path: Path, page_size: int | None = None, durable: bool = True) -> Engine:
    """An engine on the SQLite file ``path``; ``page_size`` applies when it creates the file.

    ``durable``: each commit waits for the disk (else only checkpoints do, which loses no
    commit when the process dies, only when the machine does)."""
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


def postgres_engine(text: str) -> Engine:
    """An engine on the PostgreSQL database at the URL ``text`` (with the psycopg driver)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingExtra("psycopg", "postgres") from None
    url = make_url(text).set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def companion_engine(url: URL, name: str) -> Engine:
    """A database for another store beside the registry at ``url``: see
    ``Registry.companion_engine``."""
    if url.get_backend_name() == "postgresql":
        engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            dbapi_conn.commit()  # else the pool's rollback would undo it

        return engine
    # Large pages: a companion store writes blobs of a hundred kilobytes and more (an
    # inference log round), which then take a sixteenth of the page writes.
    return sqlite_engine(
        Path(str(url.database)).with_name(f"{name}.db"), page_size=65536, durable=False
    )


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT into ``table`` in the connection's dialect, which can skip conflicts."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
