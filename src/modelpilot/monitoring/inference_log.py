"""The inference log: sampled requests with their inputs, outputs and, later, their labels.

Three tables beside the registry (in a SQLite file next to it, or in the registry's
PostgreSQL database), written by the monitor's tap (a process of its own in the server),
never by a request:

- ``inference_log_batches``: the requests one monitoring round took in for one version, as
  one row: their ids, times and row counts, and the inputs and outputs of all their rows as
  one array per name, packed as raw bytes (JSON for strings); see ``log_records``. One row
  per round rather than per request is what keeps logging every request cheap;
- ``inference_log_labels``: the labels posted for requests.

Requests are found by id without an index written for each (see ``log_locator``).

It is bounded: after every write that passes a tenth of ``max_rows`` requests, the oldest
batches go until at most ``max_rows`` requests remain.
"""

from __future__ import annotations

import logging
import threading
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
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from modelpilot.errors import RegistryError
from modelpilot.monitoring.log_locator import Locator
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
)


class InferenceLog:
    """Logged requests by batch, found by request id, labelled later, bounded in size.

    How durable its commits are is ``engine``'s to say: ``Registry.companion_engine``, which
    the server uses, does not wait for the disk at each commit (see there).
    """

    def __init__(self, engine: Engine, max_rows: int = 200_000) -> None:
        self._engine = engine
        self.max_rows = max_rows
        self._since_trim = 0
        self._locator = Locator(batches, max_rows)
        self._locating = threading.Lock()
        try:
            create_tables(engine, metadata, _upgrade)
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
            conn.execute(insert(batches), [batch_row(item) for item in items])
        self._since_trim += sum(len(item.request_ids) for item in items)
        if self._since_trim * 10 >= self.max_rows:
            self.trim()

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
            self._drop_labels(conn, cutoff)
            conn.execute(delete(batches).where(batches.c.id <= cutoff))
            return removed

    @staticmethod
    def _drop_labels(conn: Connection, cutoff: int) -> None:
        """Delete the labels of the requests in batches up to ``cutoff``."""
        if conn.execute(select(labels_table.c.model).limit(1)).first() is None:
            return  # no labels at all (the usual case), so no request ids to read
        query = select(batches.c.model, batches.c.request_ids).where(batches.c.id <= cutoff)
        gone: dict[str, list[str]] = {}
        for model, request_ids in conn.execute(query):
            gone.setdefault(model, []).extend(orjson.loads(request_ids))
        for model, ids in gone.items():
            _delete_labels(conn, model, ids)

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> None:
        """Record (or replace) the labels of requests of ``model``."""
        if not labels:
            return
        now = time.time()
        ids = list(labels)
        with self._engine.begin() as conn:
            _delete_labels(conn, model, ids)
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
        found: dict[str, LogEntry] = {}
        with self._engine.connect() as conn:
            with self._locating:
                self._locator.refresh(conn)
                places = self._locator.candidates(ids)
            wanted = sorted({batch_id for found_at in places.values() for batch_id, _ in found_at})
            decoded: dict[int, DecodedBatch] = {}
            for start in range(0, len(wanted), 200):
                query = select(batches).where(
                    batches.c.id.in_(wanted[start : start + 200]), batches.c.model == model
                )
                for row in conn.execute(query).mappings():
                    decoded[int(row["id"])] = DecodedBatch(row)
            located: dict[str, tuple[DecodedBatch, int]] = {}
            for rid, found_at in places.items():
                for batch_id, position in found_at:  # newest first
                    batch = decoded.get(batch_id)
                    if batch is not None and batch.holds(rid, position):
                        located[rid] = (batch, position)
                        break
            labels = self._labels(conn, model, list(located))
        for rid, (batch, position) in located.items():
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


def _delete_labels(conn: Connection, model: str, request_ids: list[str]) -> None:
    """Delete the labels of these requests of ``model`` (in chunks the drivers accept)."""
    for start in range(0, len(request_ids), 500):
        conn.execute(
            delete(labels_table).where(
                labels_table.c.model == model,
                labels_table.c.request_id.in_(request_ids[start : start + 500]),
            )
        )


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


def _upgrade(conn: Connection) -> None:
    """Bring a log created by an earlier release up to date: add the columns it lacks (all
    nullable), and drop the per-request index that releases before the locator wrote."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS inference_log_requests")
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
