"""The inference log: sampled requests with their inputs, outputs and, later, their labels.

Three tables beside the registry (in a SQLite file next to it, or in the registry's
PostgreSQL database), written by the monitor's tap (a process of its own in the server),
never by a request:

- ``inference_log_batches``: the requests one monitoring round took in for one version, as
  one row: their ids, times and row counts, and the inputs and outputs of all their rows as
  one array per name, packed as raw bytes (JSON for strings); see ``log_records``. One row
  per round rather than per request is what keeps logging every request cheap;
- ``inference_log_requests``: request id -> batch and position, so that labels find them;
- ``inference_log_labels``: the labels posted for requests.

It is bounded: after every write that passes a tenth of ``max_rows`` requests, the oldest
batches go until at most ``max_rows`` requests remain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
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
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from modelpilot.errors import RegistryError
from modelpilot.monitoring.log_records import (
    DecodedBatch,
    LogBatch,
    LogEntry,
    columns,
    rows_of,
)
from modelpilot.registry.schema import create_tables

logger = logging.getLogger(__name__)

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
    Index("ix_inference_log_batches_model", "model", "id"),
)

# One B-tree keyed by request id and nothing else: every logged request writes a row here, so
# this index is most of what logging costs. Trimming finds old rows by a scan instead (it runs
# once per tenth of max_rows written). The position makes the key unique even when a client
# sends one request id twice.
requests = Table(
    "inference_log_requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column(
        "batch_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("position", Integer, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

labels_table = Table(
    "inference_log_labels",
    metadata,
    Column("request_id", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("label", Text, nullable=False),
    Column("labelled_at", Float, nullable=False),
    Index("ix_inference_log_labels", "model", "request_id"),
)


class InferenceLog:
    """Logged requests by batch, found by request id, labelled later, bounded in size."""

    def __init__(self, engine: Engine, max_rows: int = 200_000) -> None:
        self._engine = engine
        self.max_rows = max_rows
        self._since_trim = 0
        if engine.dialect.name == "sqlite":
            # The log's writes are many: let WAL commits skip the fsync (a crash of the
            # machine, not of the process, may lose the last ones; the file stays sound).
            event.listen(engine, "connect", _relaxed_sync)
        try:
            create_tables(engine, metadata, _add_columns)
            self._insert_ids = _index_statement(engine)
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot open the inference log at {engine.url}: {exc}") from exc

    def close(self) -> None:
        self._engine.dispose()

    # -- writing --------------------------------------------------------------------------

    def append(self, items: Sequence[LogBatch]) -> None:
        """Store batches of requests in one transaction."""
        if not items:
            return
        with self._engine.begin() as conn:
            for item in items:
                self._insert(conn, item)
        self._since_trim += sum(len(item.request_ids) for item in items)
        if self._since_trim * 10 >= self.max_rows:
            self.trim()

    def _insert(self, conn: Connection, item: LogBatch) -> None:
        ids = orjson.dumps(item.request_ids).decode()
        result = conn.execute(
            insert(batches).values(
                model=item.model,
                version=item.version,
                created_at=item.times[0],
                size=len(item.request_ids),
                request_ids=ids,
                times=orjson.dumps(item.times).decode(),
                row_counts=orjson.dumps(item.rows).decode(),
                inputs=item.inputs,
                outputs=item.outputs,
                packed=item.packed,
            )
        )
        batch_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        statement, whole = self._insert_ids
        if whole:  # one statement for all ids: one pass through the database, not one per row
            conn.exec_driver_sql(statement, (batch_id, ids))
        else:
            rows = [(rid, batch_id, i) for i, rid in enumerate(item.request_ids)]
            conn.exec_driver_sql(statement, rows)

    def write(self, entries: Sequence[LogEntry]) -> None:
        """Store entries one batch per model version (their labels, if any, too)."""
        grouped: dict[tuple[str, int], list[LogEntry]] = {}
        for entry in entries:
            grouped.setdefault((entry.model, entry.version), []).append(entry)
        self.append(
            [
                LogBatch(
                    model,
                    version,
                    [e.request_id for e in group],
                    [e.created_at for e in group],
                    [rows_of(e.inputs) for e in group],
                    None,
                    orjson.dumps(columns([e.inputs for e in group])).decode(),
                    orjson.dumps(columns([e.outputs for e in group])).decode(),
                )
                for (model, version), group in grouped.items()
            ]
        )
        for model in {e.model for e in entries if e.label is not None}:
            self.set_labels(
                model,
                {
                    e.request_id: e.label
                    for e in entries
                    if e.model == model and e.label is not None
                },
            )

    def trim(self) -> int:
        """Drop the oldest batches until at most ``max_rows`` requests remain; returns how
        many requests went."""
        self._since_trim = 0
        with self._engine.begin() as conn:
            total = int(
                conn.execute(select(func.coalesce(func.sum(batches.c.size), 0))).scalar() or 0
            )
            excess = total - self.max_rows
            if excess <= 0:
                return 0
            cutoff, removed = None, 0
            sizes = conn.execute(select(batches.c.id, batches.c.size).order_by(batches.c.id))
            for batch_id, size in sizes:
                if removed >= excess:
                    break
                cutoff, removed = batch_id, removed + int(size)
            if cutoff is None:
                return 0
            gone = select(requests.c.request_id).where(requests.c.batch_id <= cutoff)
            conn.execute(delete(labels_table).where(labels_table.c.request_id.in_(gone)))
            conn.execute(delete(requests).where(requests.c.batch_id <= cutoff))
            conn.execute(delete(batches).where(batches.c.id <= cutoff))
            return removed

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> None:
        """Record (or replace) the labels of requests of ``model``."""
        if not labels:
            return
        now = time.time()
        ids = list(labels)
        with self._engine.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(
                    delete(labels_table).where(
                        labels_table.c.model == model, labels_table.c.request_id.in_(chunk)
                    )
                )
            conn.execute(
                insert(labels_table),
                [
                    {
                        "request_id": rid,
                        "model": model,
                        "label": orjson.dumps(label).decode(),
                        "labelled_at": now,
                    }
                    for rid, label in labels.items()
                ],
            )

    # -- reading --------------------------------------------------------------------------

    def find(self, model: str, request_ids: Iterable[str]) -> dict[str, LogEntry]:
        """The logged requests of ``model`` with these ids (absent ones are simply missing)."""
        ids = list(dict.fromkeys(request_ids))
        located: dict[str, tuple[int, int]] = {}
        found: dict[str, LogEntry] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(requests).where(requests.c.request_id.in_(chunk))
                for rid, batch_id, position in conn.execute(query):
                    located[rid] = (int(batch_id), int(position))
            wanted = sorted({batch_id for batch_id, _ in located.values()})
            decoded: dict[int, DecodedBatch] = {}
            for start in range(0, len(wanted), 200):
                query = select(batches).where(
                    batches.c.id.in_(wanted[start : start + 200]), batches.c.model == model
                )
                for row in conn.execute(query).mappings():
                    decoded[int(row["id"])] = DecodedBatch(row)
            labels = self._labels(conn, model, [rid for rid in located])
        for rid, (batch_id, position) in located.items():
            batch = decoded.get(batch_id)
            if batch is not None:
                found[rid] = batch.entry(position, labels.get(rid))
        return found

    def recent(
        self,
        model: str,
        version: int | None = None,
        limit: int = 10_000,
        since: float | None = None,
    ) -> list[LogEntry]:
        """The newest ``limit`` requests of ``model`` (oldest first), optionally of a version."""
        query = select(batches).where(batches.c.model == model)
        if version is not None:
            query = query.where(batches.c.version == version)
        query = query.order_by(batches.c.id.desc())
        out: list[LogEntry] = []
        with self._engine.connect() as conn:
            for row in conn.execute(query).mappings():
                batch = DecodedBatch(row)
                for position in reversed(range(len(batch.request_ids))):
                    if since is not None and batch.times[position] < since:
                        continue
                    out.append(batch.entry(position, None))
                    if len(out) >= limit:
                        break
                if len(out) >= limit or (since is not None and batch.times[0] < since):
                    break
            labels = self._labels(conn, model, [e.request_id for e in out])
        out.sort(key=lambda e: e.created_at)
        return [
            e if e.request_id not in labels else _labelled(e, labels[e.request_id]) for e in out
        ]

    def count(self, model: str | None = None) -> int:
        """Requests held (of ``model``, or of all models)."""
        query = select(func.coalesce(func.sum(batches.c.size), 0))
        if model is not None:
            query = query.where(batches.c.model == model)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    @staticmethod
    def _labels(conn: Connection, model: str, ids: list[str]) -> dict[str, Any]:
        labels: dict[str, Any] = {}
        for start in range(0, len(ids), 500):
            query = select(labels_table.c.request_id, labels_table.c.label).where(
                labels_table.c.model == model,
                labels_table.c.request_id.in_(ids[start : start + 500]),
            )
            for rid, label in conn.execute(query):
                labels[rid] = orjson.loads(label)
        return labels


def _index_statement(engine: Engine) -> tuple[str, bool]:
    """How request ids go into the index: (statement, takes the whole JSON array at once).

    Row by row, the driver steps the database once per request, and SQLite's driver lets go
    of the interpreter lock and takes it back every time; the server's event loop then
    competes for the lock thousands of times a second. Both databases can unpack the batch's
    JSON array of ids themselves, in one statement.
    """
    if engine.dialect.name == "postgresql":
        return (
            "INSERT INTO inference_log_requests (request_id, batch_id, position) "
            "SELECT value, %s, ordinality - 1 "
            "FROM jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY",
            True,
        )
    if engine.dialect.name == "sqlite" and _sqlite_has_json(engine):
        return (
            "INSERT INTO inference_log_requests (request_id, batch_id, position) "
            "SELECT value, ?, key FROM json_each(?)",
            True,
        )
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return (
        "INSERT INTO inference_log_requests (request_id, batch_id, position) "
        f"VALUES ({mark}, {mark}, {mark})",
        False,
    )


def _sqlite_has_json(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT json_valid('[]')")
        return True
    except SQLAlchemyError:  # an SQLite built without JSON functions
        return False


def _add_columns(conn: Connection) -> None:
    """Give a log created by an earlier release the columns it lacks (all nullable)."""
    present = {c["name"] for c in inspect(conn).get_columns("inference_log_batches")}
    binary = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    for name, kind in (("row_counts", "TEXT"), ("packed", binary)):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE inference_log_batches ADD COLUMN {name} {kind}")


def _labelled(entry: LogEntry, label: Any) -> LogEntry:
    return LogEntry(
        entry.request_id,
        entry.model,
        entry.version,
        entry.created_at,
        entry.inputs,
        entry.outputs,
        label,
    )


def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
