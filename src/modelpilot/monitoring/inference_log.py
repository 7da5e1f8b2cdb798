"""The inference log: sampled requests with their inputs, outputs and, later, their labels.

Two tables beside the registry (in a SQLite file next to it, or in the registry's
PostgreSQL database), written by the monitor's tap (a process of its own in the server),
never by a request:

- ``inference_log_batches``: the requests one monitoring round took in for one version, as
  one row: their ids, times and row counts, and the inputs and outputs of all their rows as
  one array per name, packed as raw bytes (JSON for strings); see ``log_records``. One row
  per round rather than per request is what keeps logging every request cheap. In a SQLite
  log the row keeps only the batch's model, version, time and size, and its contents go to
  a segment file beside the database (see ``log_segments``);
- ``inference_log_labels``: the labels posted for requests.

Requests are found by id without an index written for each (see ``log_locator``).

It is bounded, and always keeps its newest requests: once it holds a tenth more than its
bound, the oldest batches go until at most the bound remain (and with them, in a SQLite log,
the segment files none of the rest refers to), but the newest batch never goes. Its bound is
``max_rows``, or the smallest bound of the servers sharing the log if smaller, whichever
writes (see ``log_bounds``). What it holds is counted in the log itself
(``log_tables.state``), by every process that writes to it, and across restarts: counted by
each process from its start, a log whose servers restarted before each wrote a tenth of the
bound was never trimmed.

Batches go whole, so a batch of more than ``max_rows`` requests (a round at 8,000
requests/s, with ``max_rows=100``) would have emptied the log, and left labels nothing to
join: it is written as its newest ``max_rows`` requests instead, the rest counted in
``left_out``. So the log holds the newest ``min(max_rows, n)`` requests of its newest batch
of ``n``, and the older batches that fit beside them.

Labels go with their requests' batches; labels of requests it does not hold (a sampled log
takes those of every request the server remembers) once its oldest request is newer than they
are by ``LABELS_GRACE_SECONDS``. In PostgreSQL trimmed rows' space is taken again only when
the tables are vacuumed: with autovacuum off they grow by every row trimmed (a log of about
100 requests of 1,000 rows went from 19 to 171 MB), and the log says so at start. VACUUM is
not run at each trim (it cannot run in the trim's transaction, and reads the table whole):
that is autovacuum's job, or a scheduled VACUUM's.

A batch that cannot be read back (a damaged segment file or row) is skipped wherever it is
read, as if trimmed: one error line names its file, and ``unreadable`` counts it (see
``log_rows``). A log that cannot be opened at all is no reason to stop monitoring: see
:func:`open_log`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from modelpilot.errors import RegistryError
from modelpilot.monitoring.log_bounds import LogBounds, smallest_bound
from modelpilot.monitoring.log_locator import Locator
from modelpilot.monitoring.log_records import (
    DecodedBatch,
    LogBatch,
    LogEntry,
    columns,
    newest,
    rows_of,
)
from modelpilot.monitoring.log_rows import BatchRows
from modelpilot.monitoring.log_tables import (
    _ID_COLUMNS,
    UNREADABLE_LABEL,
    _upgrade,
    add_held,
    delete_labels,
    labels_table,
    lock_held,
    lock_labels,
    metadata,
    read_labels,
    segments_of,
    set_held,
    stored_label,
    warn_without_autovacuum,
)
from modelpilot.monitoring.log_tables import batch_row as batch_row
from modelpilot.monitoring.log_tables import batches as batches
from modelpilot.registry.database import WRITE_OPTION
from modelpilot.registry.schema import create_tables
from modelpilot.registry.store import Registry
from modelpilot.repeated_errors import first_line

logger = logging.getLogger(__name__)

LABELS_GRACE_SECONDS = 60.0
"""How much older than the log's oldest request a label must be for a trim to take it without
its request: a label comes after its answer, so an older one labels no logged request. The
grace covers clocks of servers sharing a PostgreSQL log, and siblings' reads of new labels."""


class StoredLabel(NamedTuple):
    request_id: str
    label: Any
    """As it was posted (a value, or a list of one per row)."""
    at: float


class InferenceLog:
    """Logged requests by batch, found by request id, labelled later, bounded in size.

    How durable its commits are is ``engine``'s to say: ``Registry.companion_engine``, which
    the server uses, does not wait for the disk at each commit (see there).
    """

    def __init__(
        self, engine: Engine, max_rows: int = 200_000, advise: bool = True, bound: bool = False
    ) -> None:
        """``advise``: say what the log's database needs (``advise``), unless the server's
        process has said it already; ``bound``: say ``max_rows`` to the servers sharing the
        log, which all trim it by the smallest of theirs (``log_bounds``), as a server does
        (``open_log``). A reader (``modelpilot drift``) does not: its default would bound the
        log for as long as it reads it."""
        self._engine = engine
        # Writes take SQLite's write lock up front: segments are appended to under it.
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self.max_rows = max_rows
        self._trim_wait = 0
        """Requests this process writes before it tries again a trim that failed."""
        self._segments = segments_of(engine)
        self._rows = BatchRows(self._segments, engine.url)
        self._locator = Locator(batches, max_rows, self._rows.request_ids, _ID_COLUMNS)
        self._locating = threading.Lock()
        self.left_out = 0
        """Requests not written because their batch alone held more than ``max_rows`` (its
        newest ``max_rows`` were)."""
        try:
            create_tables(engine, metadata, _upgrade)
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot open the inference log at {engine.url}: {exc}") from exc
        if advise:
            warn_without_autovacuum(engine)
        self._bounds = LogBounds(self._writer, max_rows) if bound else None

    @property
    def unreadable(self) -> int:
        """Batches skipped because they could not be read back (each counted once)."""
        return self._rows.unreadable

    def close(self) -> None:
        if self._bounds is not None:
            self._bounds.leave()
        if self._segments is not None:
            self._segments.close()
        self._engine.dispose()

    # -- writing --------------------------------------------------------------------------

    def append(self, items: Sequence[LogBatch]) -> None:
        """Store batches of requests in one transaction: of one larger than ``max_rows``,
        only its newest ``max_rows`` requests (see the module's docstring)."""
        if not items:
            return
        bound = max(self.max_rows, 1)
        kept = [newest(item, bound) for item in items]
        written = sum(len(item.request_ids) for item in kept)
        with self._writer.begin() as conn:
            conn.execute(insert(batches), [self._rows.stored(batch_row(item)) for item in kept])
            held, smallest = add_held(conn, written)
        # Counted once committed: a caller retries a failed append with the same batches.
        self._count_left_out(items, kept)
        self._trim_wait = max(self._trim_wait - written, 0)
        limit = self._limit(smallest)
        if self._trim_wait == 0 and (held is None or held * 10 >= limit * 11):
            try:
                self.trim()
            except (SQLAlchemyError, OSError):
                # The batches are committed: a caller that took this for a failed append
                # would write them twice. Trimming is tried again a tenth later.
                self._trim_wait = max(self.max_rows // 10, 1)
                logger.exception("trimming the inference log failed; it is tried again later")

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

    def _count_left_out(self, items: Sequence[LogBatch], kept: Sequence[LogBatch]) -> None:
        """Count the requests ``append`` left out of ``items``; the first time, say why and
        what to do (once: it recurs every round for as long as the bound is too small)."""
        for item, written in zip(items, kept, strict=True):
            left_out = len(item.request_ids) - len(written.request_ids)
            if not left_out:
                continue
            if not self.left_out:
                logger.warning(
                    "a batch of %d requests of %s:%d is more than the inference log holds "
                    "(MODELPILOT_INFERENCE_LOG_MAX_ROWS=%d): only its newest %d are logged, "
                    "and labels for the rest find nothing. Raise the bound above the requests "
                    "one monitoring round takes in; this is said once, and the log's "
                    "left_out counts the requests left out",
                    len(item.request_ids),
                    item.model,
                    item.version,
                    self.max_rows,
                    len(written.request_ids),
                )
            self.left_out += left_out

    def _limit(self, smallest: int | None) -> int:
        """The log's bound: ``max_rows``, or the servers' ``smallest`` if less."""
        return self.max_rows if smallest is None else min(self.max_rows, smallest)

    def trim(self) -> int:
        """Drop the oldest batches until at most the log's bound (``max_rows``, or the
        smallest of the servers sharing it) of requests remain, but never the newest one;
        returns how many requests went.

        The batches of this log hold no more than ``max_rows`` requests each (see
        ``append``), but another writer's may (a server with a larger bound, or an earlier
        release), and dropping it would leave the log empty.

        It counts what the log holds, and leaves the count for the writes that follow (see
        the module's docstring)."""
        with self._writer.begin() as conn:
            lock_held(conn)
            total, last = conn.execute(
                select(func.coalesce(func.sum(batches.c.size), 0), func.max(batches.c.id))
            ).one()
            total = int(total or 0)
            smallest = smallest_bound(conn)
            excess = total - self._limit(smallest)
            if excess <= 0:
                set_held(conn, total, smallest)
                return 0
            cutoff, removed = None, 0
            sizes = conn.execute(
                select(batches.c.id, batches.c.size)
                .where(batches.c.id < last)
                .order_by(batches.c.id)
            )
            for batch_id, size in sizes:
                if removed >= excess:
                    break
                cutoff, removed = batch_id, removed + int(size)
            set_held(conn, total - removed, smallest)
            if cutoff is None:
                return 0
            self._drop_labels(conn, cutoff)
            conn.execute(delete(batches).where(batches.c.id <= cutoff))
            self._drop_unlogged_labels(conn)
        self.sweep()
        return removed

    def sweep(self) -> int:
        """Delete the segment files no batch refers to any more; returns how many went.

        A transaction of its own, after the trim's commit: had the trim rolled back, its
        batches would refer to files gone."""
        if self._segments is None:
            return 0
        with self._writer.begin() as conn:
            query = select(batches.c.segment).where(batches.c.segment.is_not(None)).distinct()
            return self._segments.sweep(set(conn.execute(query).scalars()))

    def _drop_labels(self, conn: Connection, cutoff: int) -> None:
        """Delete the labels of the requests in batches up to ``cutoff``."""
        if conn.execute(select(labels_table.c.model).limit(1)).first() is None:
            return  # no labels at all (the usual case), so no request ids to read
        query = select(batches.c.id, batches.c.model, *_ID_COLUMNS).where(batches.c.id <= cutoff)
        gone: dict[str, list[str]] = {}
        for row in conn.execute(query).mappings():
            gone.setdefault(row["model"], []).extend(self._rows.request_ids(row) or [])
        for model, ids in gone.items():
            delete_labels(conn, model, ids)

    def _drop_unlogged_labels(self, conn: Connection) -> None:
        """Delete the labels older than the log's oldest request (by ``LABELS_GRACE_SECONDS``):
        of requests it does not hold, which no batch's trim would take (see the module's
        docstring)."""
        oldest = conn.execute(select(func.min(batches.c.created_at))).scalar()
        if oldest is not None:
            since = float(oldest) - LABELS_GRACE_SECONDS
            conn.execute(delete(labels_table).where(labels_table.c.labelled_at < since))

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> dict[str, bool]:
        """Record (or replace) the labels of requests of ``model``; returns the requests
        that held a label already, each with whether it was this very one (the same JSON).

        Such a label is left as it was, its time too: written again, a re-sent label (a
        retry, a nightly re-sync) read as new to every server that reads the log's labels,
        which put an outcome of days ago back in their quality windows as the newest.

        Read, deleted and inserted in one transaction, one at a time for each model
        (``lock_labels``): two servers taking the same labels at once each deleted before
        either inserted, and both rows stayed. Labels of requests the sample left out too
        (siblings read them here); ``trim`` takes them as the log moves past them.

        On the writer (a SQLite log's write lock taken up front): a transaction begun as a
        read and turned into a write is refused at once, "database is locked", without the
        busy timeout, when another process committed in between, which refused a sixth of
        the labels posted to ``serve --workers 3`` (each worker writes the log)."""
        if not labels:
            return {}
        now = time.time()
        with self._writer.begin() as conn:
            lock_labels(conn, model)
            held = {
                rid: orjson.dumps(before) == orjson.dumps(labels[rid])
                for rid, before in read_labels(conn, model, list(labels)).items()
            }
            changed = [rid for rid in labels if not held.get(rid, False)]
            if not changed:
                return held
            delete_labels(conn, model, changed)
            conn.execute(
                insert(labels_table),
                [
                    {
                        "request_id": rid,
                        "model": model,
                        "label": orjson.dumps(labels[rid]).decode(),
                        "labelled_at": now,
                    }
                    for rid in changed
                ],
            )
        return held

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
                    batch = self._rows.decoded(row)
                    if batch is not None:
                        decoded[int(row["id"])] = batch
            located: dict[str, tuple[DecodedBatch, int]] = {}
            for rid, found_at in places.items():
                for batch_id, position in found_at:  # newest first
                    batch = decoded.get(batch_id)
                    if batch is not None and batch.holds(rid, position):
                        located[rid] = (batch, position)
                        break
            labels = read_labels(conn, model, list(located))
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
                batch = self._rows.decoded(row)
                if batch is None:
                    continue
                for position in reversed(range(len(batch.request_ids))):
                    if since is not None and batch.times[position] < since:
                        continue
                    out.append(batch.entry(position, None))
                    if len(out) >= limit:
                        break
                if len(out) >= limit or (since is not None and batch.times[0] < since):
                    break
            labels = read_labels(conn, model, [e.request_id for e in out])
        out.sort(key=lambda e: e.created_at)
        return [
            e if e.request_id not in labels else replace(e, label=labels[e.request_id]) for e in out
        ]

    def versions_since(self, since: float) -> list[tuple[str, int]]:
        """The versions (model, version) with requests logged since ``since``."""
        query = (
            select(batches.c.model, batches.c.version)
            .where(batches.c.created_at >= since)
            .group_by(batches.c.model, batches.c.version)
        )
        with self._engine.connect() as conn:
            return [(str(model), int(version)) for model, version in conn.execute(query)]

    def labels_since(self, since: float, limit: int) -> dict[str, list[StoredLabel]]:
        """The labels posted since ``since``, by model: each model's newest ``limit``, oldest
        first."""
        query = (
            select(labels_table.c.model, labels_table.c.request_id, labels_table.c.label)
            .add_columns(labels_table.c.labelled_at)
            .where(labels_table.c.labelled_at >= since)
            .order_by(labels_table.c.labelled_at.desc())
        )
        found: dict[str, list[StoredLabel]] = {}
        with self._engine.connect() as conn:
            for model, request_id, label, at in conn.execute(query):
                kept = found.setdefault(model, [])
                if len(kept) < limit:
                    value = stored_label(label)
                    if value is not UNREADABLE_LABEL:
                        kept.append(StoredLabel(request_id, value, float(at)))
        return {model: kept[::-1] for model, kept in found.items()}

    def count(self, model: str | None = None) -> int:
        """Requests held (of ``model``, or of all models)."""
        query = select(func.coalesce(func.sum(batches.c.size), 0))
        if model is not None:
            query = query.where(batches.c.model == model)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def advise(registry: Registry) -> None:
    """Say what the inference log's database needs (autovacuum, in PostgreSQL) from the
    server's own process, before it says it serves: said by the monitoring process as it
    opened the log, it came as many seconds after start as that process took to start (on a
    loaded machine, after the first requests), or never where it did not start."""
    engine = registry.companion_engine("inference-log")
    try:
        warn_without_autovacuum(engine)
    finally:
        engine.dispose()


def open_log(engine: Engine, max_rows: int, advise: bool = True) -> InferenceLog | None:
    """The inference log on ``engine``; None, with the error logged, if it cannot be opened
    (its file damaged, not a database, out of reach): monitoring is better off without its
    log than without drift, predictions and alerts too. A PostgreSQL server that does not
    answer raises, as it may answer in a moment: the monitoring process dies, and its
    replacement tries again."""
    try:
        return InferenceLog(engine, max_rows, advise, bound=True)
    except (RegistryError, SQLAlchemyError, OSError) as exc:
        engine.dispose()
        cause = exc.__cause__ if isinstance(exc, RegistryError) else exc
        if engine.dialect.name == "postgresql" and isinstance(cause, OperationalError):
            raise
        logger.error(
            "%s; monitoring carries on without the inference log: drift, predictions and "
            "alerts go on, but no request is logged (modelpilot_monitor_unlogged_total counts "
            "them), labels join only predictions made since this start, and nothing comes "
            "back after a restart. Repair or move away the log's database and restart.",
            first_line(exc)
            if isinstance(exc, RegistryError)
            else f"cannot open the inference log: {first_line(exc)}",
        )
        return None
