"""What bounds an inference log that several servers share: the smallest bound of those there.

Servers of one PostgreSQL registry, or of one SQLite registry directory, share its log, each
with its own ``MODELPILOT_INFERENCE_LOG_MAX_ROWS``. Each once trimmed the log by its own bound
only as it wrote: beside a server with a larger bound and all the traffic, one with a bound of
1,000 and none let the log grow to 7,654 requests, then at its first write trimmed it to its
bound in one go, and the labels of the 6,900 requests the other had just answered found
nothing. So each server's log says its bound in ``inference_log_bounds`` while it is open (a
row it says again every ``BEAT_SECONDS``, whatever its traffic), and every trim, whoever makes
it, goes by the smallest bound of the rows said in the last ``GONE_SECONDS``; the count's row
keeps that smallest bound as well (``state.bound``), which each write reads with the count, so
that a write knows when the log is due a trim without a statement more.

A server that stops deletes its row, and counts no more at once; the row of one that died
(or whose monitoring process was stopped without closing the log, as one handed no request
is) counts for ``GONE_SECONDS`` more, then the next look of any server deletes it: a server
gone long ago does not bound the log for ever. Times are the database's clock, not each server's:
servers whose clocks disagreed by a minute would take each other for gone.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    delete,
    extract,
    func,
    insert,
    select,
    update,
)

from modelpilot.monitoring.log_tables import bounds, lock_held, set_bound
from modelpilot.repeated_errors import RepeatedErrors, first_line

logger = logging.getLogger("modelpilot.monitoring.inference_log")

BEAT_SECONDS = 10.0
"""How often an open log says again that its server is there, with its bound."""

GONE_SECONDS = 60.0
"""How long after a server last said its bound it is taken for gone (it died, or its
database was out of its reach that long): six beats, which no loaded machine misses."""


def database_now(conn: Connection) -> float:
    """The database's time, in seconds since the epoch."""
    now: ColumnElement[Any]
    if conn.dialect.name == "postgresql":
        now = extract("epoch", func.clock_timestamp())
    else:  # SQLite: the Julian day of the epoch, in days
        now = (func.julianday("now") - 2440587.5) * 86400.0
    return float(conn.execute(select(now)).scalar_one())


def smallest_bound(conn: Connection) -> int | None:
    """The smallest bound of the servers there (None: none said one), after deleting the rows
    of those gone. In a transaction that holds the count's row (``lock_held``): two servers
    looking at once would each leave what it found, the later maybe without the other's."""
    conn.execute(delete(bounds).where(bounds.c.seen_at < database_now(conn) - GONE_SECONDS))
    smallest = conn.execute(select(func.min(bounds.c.max_rows))).scalar()
    return None if smallest is None else int(smallest)


class LogBounds:
    """One server process's bound, said in the log it writes until ``leave``.

    A thread of its own says it again every ``beat_seconds``: a server idle for minutes still
    bounds the log that the others write."""

    def __init__(self, writer: Engine, max_rows: int, beat_seconds: float = BEAT_SECONDS) -> None:
        """``writer``: the log's engine for writes (a SQLite log's write lock up front)."""
        self._engine = writer
        self.max_rows = max_rows
        self.beat_seconds = beat_seconds
        self.name = uuid.uuid4().hex
        """This process's row among the servers'."""
        self.failures = 0
        """Beats that failed (each is tried again ``beat_seconds`` later)."""
        self._errors = RepeatedErrors(logger, level=logging.WARNING)
        self._lock = threading.Lock()
        self._left = False
        self._stop = threading.Event()
        self._beat_quietly()
        self._thread = threading.Thread(target=self._run, name="inference-log-bound", daemon=True)
        self._thread.start()

    def beat(self) -> int | None:
        """Say that this server is there, with its bound; returns the smallest bound of the
        servers there (None once it has left)."""
        with self._lock:
            if self._left:
                return None
            with self._engine.begin() as conn:
                lock_held(conn)
                seen = {"max_rows": self.max_rows, "seen_at": database_now(conn)}
                mine = update(bounds).where(bounds.c.writer == self.name).values(**seen)
                if conn.execute(mine).rowcount == 0:  # new, or taken for gone meanwhile
                    conn.execute(insert(bounds).values(writer=self.name, **seen))
                smallest = smallest_bound(conn)
                set_bound(conn, smallest)
            return smallest

    def leave(self) -> None:
        """Count no more in the log's bound (the others' trims go by theirs from now)."""
        with self._lock:
            if self._left:
                return
            self._left = True
            self._stop.set()
            try:
                with self._engine.begin() as conn:
                    lock_held(conn)
                    conn.execute(delete(bounds).where(bounds.c.writer == self.name))
                    set_bound(conn, smallest_bound(conn))
            except Exception as exc:
                logger.warning(
                    "could not take this server's bound out of the inference log's (%s): it "
                    "counts for %.0f s more",
                    first_line(exc),
                    GONE_SECONDS,
                )
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.beat_seconds):
            self._beat_quietly()

    def _beat_quietly(self) -> None:
        # Never the end of the thread: a database out of reach for a while must not leave the
        # server out of the log's bound for the rest of its life.
        try:
            self.beat()
        except Exception as exc:
            self.failures += 1
            self._errors.error(
                type(exc).__qualname__,
                "could not say this server's bound (%d requests) in the inference log: %s; "
                "tried again every %.0f s, and %.0f s after the last time it was said the "
                "other servers sharing the log trim it by theirs only",
                self.max_rows,
                first_line(exc),
                self.beat_seconds,
                GONE_SECONDS,
            )
