"""A companion database's write-ahead log (the inference log's, beside a SQLite registry) stays
about ``COMPANION_WAL_BYTES`` whatever is written, in a new file and in one an earlier release
made with 64 KiB pages; it grew to 64 MB whatever the log's bound."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import make_url

from modelpilot.registry.database import COMPANION_WAL_BYTES, companion_engine

COMMITS = 200
BLOB_BYTES = 100_000
"""20 MB written in all, a commit at a time: five times what the write-ahead log may hold."""


def write_and_watch(directory: Path) -> tuple[int, int]:
    """Commit ``COMMITS`` rows of ``BLOB_BYTES`` to the companion ``inference-log`` beside a
    registry in ``directory``; the largest its write-ahead log got, and the rows there."""
    engine = companion_engine(make_url(f"sqlite:///{directory}/registry.db"), "inference-log")
    wal = directory / "inference-log.db-wal"
    largest = 0
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS blobs (data BLOB)")
        for _ in range(COMMITS):
            with engine.begin() as conn:
                conn.exec_driver_sql(f"INSERT INTO blobs VALUES (zeroblob({BLOB_BYTES}))")
            largest = max(largest, wal.stat().st_size)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar_one()
    finally:
        engine.dispose()
    return largest, rows


def page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        size: int = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return size


def test_a_new_companion_has_small_pages_and_a_small_write_ahead_log(tmp_path: Path) -> None:
    largest, rows = write_and_watch(tmp_path)
    assert rows == COMMITS
    assert page_size(tmp_path / "inference-log.db") == 4096
    assert largest <= COMPANION_WAL_BYTES + 2 * BLOB_BYTES


def test_a_companion_made_with_large_pages_keeps_them_and_a_small_log(tmp_path: Path) -> None:
    """A log an earlier release made (64 KiB pages) is read and written as it is."""
    made = sqlite3.connect(tmp_path / "inference-log.db")
    made.execute("PRAGMA page_size=65536")
    made.execute("PRAGMA journal_mode=WAL")
    made.execute("CREATE TABLE blobs (data BLOB)")
    made.execute("INSERT INTO blobs VALUES (x'00')")
    made.commit()
    made.close()
    largest, rows = write_and_watch(tmp_path)
    assert rows == COMMITS + 1
    assert page_size(tmp_path / "inference-log.db") == 65536
    # A checkpoint every 64 pages of 64 KiB: a commit's pages (two 64 KiB ones) past it.
    assert largest <= COMPANION_WAL_BYTES + 2 * BLOB_BYTES + 2 * 65536


def test_a_companion_log_is_cut_back_after_a_long_transaction(tmp_path: Path) -> None:
    """One transaction larger than the limit grows the log past it; once checkpointed it is
    cut back to the limit, not kept at that size for good."""
    engine = companion_engine(make_url(f"sqlite:///{tmp_path}/registry.db"), "inference-log")
    wal = tmp_path / "inference-log.db-wal"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE blobs (data BLOB)")
            for _ in range(2 * COMPANION_WAL_BYTES // BLOB_BYTES):
                conn.exec_driver_sql(f"INSERT INTO blobs VALUES (zeroblob({BLOB_BYTES}))")
        grown = wal.stat().st_size
        for _ in range(3):  # checkpointed after the first; the next write starts it over
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO blobs VALUES (x'00')")
        assert grown > 2 * COMPANION_WAL_BYTES - BLOB_BYTES
        assert wal.stat().st_size <= COMPANION_WAL_BYTES
    finally:
        engine.dispose()
