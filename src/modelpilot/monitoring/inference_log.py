"""The inference log: sampled requests with their inputs, outputs and, later, their labels.

One table beside the registry (a SQLite file next to it, or the registry's PostgreSQL
database), written in batches by the monitor's thread, never by a request. It is bounded:
after every write that passes a tenth of ``max_rows``, rows beyond the newest ``max_rows`` go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from modelpilot.errors import RegistryError

logger = logging.getLogger(__name__)

metadata = MetaData()

entries = Table(
    "inference_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    Column("label", Text),
    Column("labelled_at", Float),
    Index("ix_inference_log_request", "request_id"),
    Index("ix_inference_log_model", "model", "id"),
)


@dataclass(frozen=True, slots=True)
class LogEntry:
    request_id: str
    model: str
    version: int
    created_at: float
    inputs: dict[str, Any]
    """Input name -> nested lists, as the model saw it."""
    outputs: dict[str, Any]
    label: Any = None


def jsonable(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Arrays as JSON can hold them: numbers as numbers, bytes as text, NaN as null."""
    out: dict[str, Any] = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            out[name] = np.where(np.isfinite(array), array.astype(object), np.array(None)).tolist()
        elif array.dtype.kind in "OSU":
            out[name] = [_text(v) for v in array.ravel()]
            if array.ndim > 1:
                out[name] = np.array(out[name], dtype=object).reshape(array.shape).tolist()
        else:
            out[name] = array.tolist()
    return out


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


class InferenceLog:
    """Append-only (but for labels) table of sampled requests, bounded to ``max_rows``."""

    def __init__(self, engine: Engine, max_rows: int = 1_000_000) -> None:
        self._engine = engine
        self.max_rows = max_rows
        self._since_trim = 0
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot open the inference log at {engine.url}: {exc}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def write(self, batch: Sequence[LogEntry]) -> None:
        if not batch:
            return
        rows = [
            {
                "request_id": e.request_id,
                "model": e.model,
                "version": e.version,
                "created_at": e.created_at,
                "inputs": orjson.dumps(e.inputs).decode(),
                "outputs": orjson.dumps(e.outputs).decode(),
                "label": None if e.label is None else orjson.dumps(e.label).decode(),
            }
            for e in batch
        ]
        with self._engine.begin() as conn:
            conn.execute(insert(entries), rows)
        self._since_trim += len(rows)
        if self._since_trim * 10 >= self.max_rows:
            self.trim()

    def trim(self) -> int:
        """Drop rows beyond the newest ``max_rows``; returns how many went."""
        self._since_trim = 0
        with self._engine.begin() as conn:
            newest = conn.execute(select(func.max(entries.c.id))).scalar()
            if newest is None or newest <= self.max_rows:
                return 0
            result = conn.execute(delete(entries).where(entries.c.id <= newest - self.max_rows))
            return int(result.rowcount or 0)

    def find(self, model: str, request_ids: Iterable[str]) -> dict[str, LogEntry]:
        """The logged requests of ``model`` with these ids (absent ones are simply missing)."""
        ids = list(dict.fromkeys(request_ids))
        found: dict[str, LogEntry] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = select(entries).where(
                    entries.c.model == model, entries.c.request_id.in_(ids[start : start + 500])
                )
                for row in conn.execute(query).mappings():
                    found[row["request_id"]] = _entry(row)
        return found

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> None:
        now = time.time()
        with self._engine.begin() as conn:
            for request_id, label in labels.items():
                conn.execute(
                    update(entries)
                    .where(entries.c.model == model, entries.c.request_id == request_id)
                    .values(label=orjson.dumps(label).decode(), labelled_at=now)
                )

    def recent(
        self,
        model: str,
        version: int | None = None,
        limit: int = 10_000,
        since: float | None = None,
    ) -> list[LogEntry]:
        """The newest ``limit`` entries of ``model`` (oldest first), optionally of one version."""
        query = select(entries).where(entries.c.model == model)
        if version is not None:
            query = query.where(entries.c.version == version)
        if since is not None:
            query = query.where(entries.c.created_at >= since)
        query = query.order_by(entries.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = [_entry(row) for row in conn.execute(query).mappings()]
        rows.reverse()
        return rows

    def count(self, model: str | None = None) -> int:
        query = select(func.count()).select_from(entries)
        if model is not None:
            query = query.where(entries.c.model == model)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def _entry(row: Any) -> LogEntry:
    return LogEntry(
        request_id=row["request_id"],
        model=row["model"],
        version=int(row["version"]),
        created_at=float(row["created_at"]),
        inputs=orjson.loads(row["inputs"]),
        outputs=orjson.loads(row["outputs"]),
        label=None if row["label"] is None else orjson.loads(row["label"]),
    )
