"""The inference log's tables, and how a batch of requests is laid out in a row of them
(in a SQLite log, with its contents in a segment file beside it): see ``inference_log``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from modelpilot.monitoring import log_segments
from modelpilot.monitoring.log_records import LogBatch

logger = logging.getLogger("modelpilot.monitoring.inference_log")

metadata = MetaData()

batches = Table(
    "inference_log_batches",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("model", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("size", Integer, nullable=False),
    Column("request_ids", Text, nullable=False),
    Column("times", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    # Rows of each request (JSON array). Absent in logs written before it existed, whose
    # inputs and outputs are arrays of one object per request instead.
    Column("row_counts", Text, nullable=True),
    # Inputs and outputs packed as raw bytes (log_records.pack_arrays); inputs and outputs
    # are then empty. Absent in logs written before it existed, and for string data.
    Column("packed", LargeBinary, nullable=True),
    # Where the batch's contents are, in an embedded log (log_segments): its request ids,
    # times, row counts, inputs, outputs and packed columns are then empty.
    Column("segment", String(64), nullable=True),
    Column("segment_offset", BigInteger, nullable=True),
    Column("segment_length", BigInteger, nullable=True),
    Index("ix_inference_log_batches_model", "model", "id"),
    # Never give a batch id out twice (SQLite would, after the newest batches were deleted):
    # the locator takes a batch id it has read to mean the same batch for good.
    sqlite_autoincrement=True,
)

labels_table = Table(
    "inference_log_labels",
    metadata,
    Column("request_id", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("label", Text, nullable=False),
    Column("labelled_at", Float, nullable=False),
    Index("ix_inference_log_labels", "model", "request_id"),
    # Servers of one log read each other's new labels by time, every few seconds.
    Index("ix_inference_log_labels_at", "labelled_at"),
)


state = Table(
    "inference_log_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    # Requests the log holds: counted by the last trim, and added to by every write since,
    # whichever process or server made it. Null: not counted yet (a log of a release before
    # the count, or one whose count was lost), which the next write's trim counts.
    Column("held", BigInteger, nullable=True),
    # The smallest bound of the servers sharing the log, as the last of them to look found it
    # (``log_bounds``); null: none said one (every writer then goes by its own).
    Column("bound", BigInteger, nullable=True),
)
"""One row: what tells a writer when the log is due a trim. Each process once counted its own
writes since it started, so a log whose servers restarted (or whose monitoring processes were
replaced) before each had written a tenth of the bound was never trimmed, and grew without
end; and with workers, each counted apart."""

bounds = Table(
    "inference_log_bounds",
    metadata,
    # One row per server process that has the log open (see ``log_bounds``).
    Column("writer", String(64), primary_key=True),
    Column("max_rows", BigInteger, nullable=False),
    # When it last said it was there, in seconds since the epoch by the database's clock.
    Column("seen_at", Float, nullable=False),
)

_STATE_ROW = 1


def batch_row(item: LogBatch) -> dict[str, Any]:
    """``item`` as a row of ``inference_log_batches``."""
    return {
        "model": item.model,
        "version": item.version,
        "created_at": item.times[0],
        "size": len(item.request_ids),
        "request_ids": orjson.dumps(item.request_ids).decode(),
        "times": orjson.dumps(item.times).decode(),
        "row_counts": orjson.dumps(item.rows).decode(),
        "inputs": item.inputs,
        "outputs": item.outputs,
        "packed": item.packed,
    }


def delete_labels(conn: Connection, model: str, request_ids: list[str]) -> None:
    """Delete the labels of these requests of ``model`` (in chunks the drivers accept)."""
    for start in range(0, len(request_ids), 500):
        conn.execute(
            delete(labels_table).where(
                labels_table.c.model == model,
                labels_table.c.request_id.in_(request_ids[start : start + 500]),
            )
        )


def lock_labels(conn: Connection, model: str) -> None:
    """Hold the lock of ``model``'s labels until ``conn``'s transaction ends, on PostgreSQL
    (SQLite writes one transaction at a time anyway): an advisory lock on a signed 64-bit
    number of the model's name, hashed with what it is for, apart from any other lock."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"modelpilot inference-log labels {model}".encode()).digest()
    conn.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True))))


def read_labels(conn: Connection, model: str, ids: list[str]) -> dict[str, Any]:
    """The stored labels of these requests of ``model`` (in chunks the drivers accept),
    leaving out those that cannot be read."""
    labels: dict[str, Any] = {}
    for start in range(0, len(ids), 500):
        query = select(labels_table.c.request_id, labels_table.c.label).where(
            labels_table.c.model == model,
            labels_table.c.request_id.in_(ids[start : start + 500]),
        )
        for rid, label in conn.execute(query):
            value = stored_label(label)
            if value is not UNREADABLE_LABEL:
                labels[rid] = value
    return labels


def stored_label(text: str) -> Any:
    """A stored label; ``UNREADABLE_LABEL`` if it is not JSON (a damaged row: skipped)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return UNREADABLE_LABEL


UNREADABLE_LABEL = object()


def warn_without_autovacuum(engine: Engine) -> None:
    """Say once, at start, that a PostgreSQL log's tables grow when nothing vacuums them (see
    ``inference_log``'s docstring)."""
    if engine.dialect.name != "postgresql":
        return
    try:
        with engine.connect() as conn:
            setting = conn.exec_driver_sql("SHOW autovacuum").scalar()
    except SQLAlchemyError:
        return  # no reason to refuse the log: this is only advice
    if str(setting).lower() == "off":
        logger.warning(
            "PostgreSQL's autovacuum is off: the inference log deletes the rows it trims, but "
            "their space is taken again only when vacuumed, so its tables grow with every "
            "request logged. Turn autovacuum on, or run VACUUM inference_log_batches, "
            "inference_log_labels regularly"
        )


_ADD = update(state).values(held=state.c.held + bindparam("requests"))
_ADD_RETURNING = _ADD.returning(state.c.held, state.c.bound)
_HELD = select(state.c.held, state.c.bound)
# Built once: built at each call, they cost a SQLite log's append a third more.


def add_held(conn: Connection, requests: int) -> tuple[int | None, int | None]:
    """Count ``requests`` more in the log; returns how many it holds and the smallest bound
    of the servers sharing it (``state``'s; None: not known).

    On PostgreSQL this holds the count's row lock until ``conn``'s transaction ends: make it
    the transaction's last statement, so that the other servers' writes wait for no more than
    its commit."""
    if conn.dialect.update_returning:  # PostgreSQL, SQLite from 3.35
        row = conn.execute(_ADD_RETURNING, {"requests": requests}).first()
    else:
        conn.execute(_ADD, {"requests": requests})
        row = conn.execute(_HELD).first()
    if row is None:
        return None, None
    held, bound = row
    return None if held is None else int(held), None if bound is None else int(bound)


def lock_held(conn: Connection) -> None:
    """Hold the count's row until ``conn``'s transaction ends (PostgreSQL; a SQLite write
    transaction holds the whole file): a trim counts the log, and writes committed while it
    did would be lost from the count it leaves."""
    conn.execute(select(state.c.held).with_for_update())


def set_held(conn: Connection, requests: int, bound: int | None) -> None:
    """The count and the smallest bound as a trim found them (the row put back if it has
    gone)."""
    if conn.execute(update(state).values(held=requests, bound=bound)).rowcount == 0:
        conn.execute(insert(state).values(id=_STATE_ROW, held=requests, bound=bound))


def set_bound(conn: Connection, bound: int | None) -> None:
    """The smallest bound of the servers sharing the log, as ``log_bounds`` found it."""
    conn.execute(update(state).values(bound=bound))


def segments_of(engine: Engine) -> log_segments.Segments | None:
    """The segment files of a log in a SQLite file: a folder beside it (``inference-log.db``
    keeps them in ``inference-log.segments``). None for PostgreSQL, which several machines may
    share, and for a database in memory: they hold the contents in their rows."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return log_segments.Segments(Path(database).with_suffix(".segments"))


def _place(row: Mapping[Any, Any]) -> log_segments.Place | None:
    if row["segment"] is None:
        return None
    return log_segments.Place(
        str(row["segment"]), int(row["segment_offset"]), int(row["segment_length"])
    )


_ID_COLUMNS = (
    batches.c.request_ids,
    batches.c.segment,
    batches.c.segment_offset,
    batches.c.segment_length,
)
"""What ``log_rows.BatchRows.request_ids`` reads a row's request ids from."""

_MOVED = {name: None if name in ("row_counts", "packed") else "" for name in log_segments.FIELDS}
"""A segment row's own values of the columns whose contents its segment holds (empty text in
the columns that must hold some, else null)."""


def _upgrade(conn: Connection) -> None:
    """Bring a log created by an earlier release up to date: add the columns it lacks (all
    nullable: the count's ``bound`` too) and the index of labels by time, drop the per-request
    index that releases before the locator wrote, and start the count of requests held
    (``state``): at 0 in an empty log, else not known, which the first write's trim counts. A
    few index lookups: a start does not read a large log through."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS inference_log_requests")
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_inference_log_labels_at ON inference_log_labels "
        "(labelled_at)"
    )
    present = {c["name"] for c in inspect(conn).get_columns("inference_log_batches")}
    binary = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    for name, kind in (
        ("row_counts", "TEXT"),
        ("packed", binary),
        ("segment", "VARCHAR(64)"),
        ("segment_offset", "BIGINT"),
        ("segment_length", "BIGINT"),
    ):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE inference_log_batches ADD COLUMN {name} {kind}")
    if "bound" not in {c["name"] for c in inspect(conn).get_columns("inference_log_state")}:
        conn.exec_driver_sql("ALTER TABLE inference_log_state ADD COLUMN bound BIGINT")
    # Under create_tables' lock: no two processes opening a log add the row twice.
    if conn.execute(select(state.c.id)).first() is None:
        empty = conn.execute(select(batches.c.id).limit(1)).first() is None
        conn.execute(insert(state).values(id=_STATE_ROW, held=0 if empty else None))
