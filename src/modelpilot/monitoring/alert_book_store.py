"""The alert book kept across a server's restarts, beside the inference log.

A server restarted while an alert fired announced it again under a new id and ``since`` and
never resolved the old one, which a receiver keyed by id kept firing for good; an error-rate
or latency alert (judged on the last minute's requests, in memory) vanished without a
``resolved``. So the server that decides on the alerts (a server alone, or worker 0 of
``serve --workers``) writes its book whenever it changes, and a server that starts takes it
over (``AlertBook.resume``): its alerts are the same alerts, with the same ids.

Each server keeps a book of its own, under ``MODELPILOT_SERVER_NAME``, else under
``server_name`` (the machine's name and the HTTP port): servers sharing a registry judge their
own traffic and tell their own verdicts. A book says which process keeps it (``Lease``), so
that two servers given one name (a named Deployment scaled to two replicas) find out, rather
than silently overwriting each other's alerts (``alert_keeper``).

- Beside a registry directory (SQLite): ``alert-books/NAME.json`` in it (a name of other
  characters than ``[A-Za-z0-9._-]``, such as ``HOST:PORT``, with a digest: ``book_file_name``),
  written to a temporary file and renamed over the old one, so that a crash leaves the old
  book or the new, never half of one. A book of a few alerts is a few kilobytes.
- With a PostgreSQL registry: a row of the table ``mp_alert_books`` in its database, by server
  (the inference log's database, which servers on other machines reach too; the artifacts
  directory may be read-only to a server, and a pod's own disk goes with it).

A book is written only when what it holds changed (an alert's figures change with each
evaluation while it fires: one small write per ``MODELPILOT_MONITOR_INTERVAL_SECONDS``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, select
from sqlalchemy.exc import SQLAlchemyError

from modelpilot.monitoring.alerts import Alert, AlertState
from modelpilot.registry.database import upsert
from modelpilot.registry.schema import create_tables
from modelpilot.registry.store import Registry

logger = logging.getLogger(__name__)

FORMAT = 1
"""The version of a saved book's layout; a book of another is not read (started empty)."""

metadata = MetaData()

books = Table(
    "mp_alert_books",
    metadata,
    Column("server", String(300), primary_key=True),
    Column("book", Text, nullable=False),
    Column("saved_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Holder:
    """The process that keeps a book: its machine and pid (for the log), and a token drawn
    at its start, which tells it from a process of the same pid on another machine or in
    another container."""

    host: str
    pid: int
    token: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(8))

    def __str__(self) -> str:
        return f"{self.host} (pid {self.pid})"


@dataclass(frozen=True, slots=True)
class Lease:
    """Who saved a book last, when, and whether it let go of it then (at its shutdown)."""

    holder: Holder
    saved_at: float
    released: bool


class BookStore(Protocol):
    """Where one server's alert book is kept between its runs."""

    where: str
    """Where, in words (for the log)."""

    def load(self) -> AlertState | None:
        """The book as it was last saved (None if never); raises OSError, ValueError or
        SQLAlchemyError if it cannot be read."""

    def lease(self) -> Lease | None:
        """Who saved the book last (None if nobody did, or a server that did not say, from
        before books said); raises as ``load`` does."""

    def save(self, text: str) -> None:
        """Keep ``text`` (``encode``'s) as the book; raises OSError or SQLAlchemyError."""

    def raw(self) -> str | None:
        """The book's text as it is kept (None if none is); raises as ``load`` does."""

    def set_aside(self, stamp: str) -> str | None:
        """Keep a book that cannot be read under a name of its own, ``stamp`` in it, so that
        the next save does not overwrite it: where it is now (None: it was left where it
        was); raises OSError or SQLAlchemyError."""

    def close(self) -> None:
        """Let go of what the store holds open (after the last save)."""


def server_name(port: int, host: str | None = None) -> str:
    """What tells this server from the others of its registry and of its machine: the
    machine's name (a pod's, under Kubernetes) and the HTTP port."""
    return f"{host or socket.gethostname()}:{port}"


def book_store(registry: Registry, server: str) -> BookStore | None:
    """Where ``server``'s book is kept beside ``registry``: a file in a registry directory, a
    table row in a PostgreSQL registry; None for a registry in memory."""
    url, _ = registry.address()
    if url.startswith("postgresql"):
        return BookTable(registry.companion_engine("inference-log"), server)
    database = url.removeprefix("sqlite:///")
    if not database or database == ":memory:":
        return None
    return BookFile(Path(database).parent / "alert-books", server)


class _Stored:
    """A book read back from where it is saved (``_read``: its JSON text, or None)."""

    def _read(self) -> str | None:
        raise NotImplementedError

    def load(self) -> AlertState | None:
        text = self._read()
        return None if text is None else decode(text)

    def lease(self) -> Lease | None:
        text = self._read()
        return None if text is None else lease_of(text)

    def raw(self) -> str | None:
        return self._read()


PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]+")
"""The server names that are their book file's name as they stand (``NAME.json``)."""


def book_file_name(server: str) -> str:
    """The file name of ``server``'s book: the name itself where it is plain (``PLAIN_NAME``,
    as before), else its plain characters (``_`` for each other, cut to 100) and a digest of
    the whole name after a ``~``, which no plain name holds.

    Books were named by the name with every character outside ``PLAIN_NAME`` replaced by
    ``_``: 東京 and 大阪 (any two names of one length in a non-Latin script), ``eu/1`` and
    ``eu_1`` shared a file, and each server took the other's alerts over. The digest (64 bits
    of SHA-256: two names of a registry meet by chance once in billions of billions) tells
    such names apart, and keeps a name of 200 characters in three bytes each within the 255
    bytes a file name may have."""
    if PLAIN_NAME.fullmatch(server):
        return f"{server}.json"
    digest = hashlib.sha256(server.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{_former_stem(server)[:100]}~{digest}.json"


def _former_stem(server: str) -> str:
    """What the book file of ``server`` was named before (but for ``.json``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", server)


class BookFile(_Stored):
    """A server's book as a JSON file in a directory, replaced whole on each save.

    A server whose name is not plain (the default ``HOST:PORT`` too) kept its book under
    another file name before (``former``): it takes that book over while its own file does not
    exist yet, so that an upgrade does not announce its firing alerts again under new ids (nor
    leave the old ones firing at the receiver). The former file is left in place: it may be
    the book of a server whose name it is, or of another whose name mapped to it too."""

    def __init__(self, directory: Path, server: str) -> None:
        self.path = directory / book_file_name(server)
        self.where = str(self.path)
        former = directory / f"{_former_stem(server)}.json"
        self.former = None if former == self.path else former
        self._former_said = False

    def _read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            pass
        if self.former is None:
            return None
        try:
            text = self.former.read_text()
        except FileNotFoundError:
            return None
        if not self._former_said:
            self._former_said = True
            logger.info(
                "the alert book of this server is read from %s, the file it was kept in "
                "before names beyond A-Z, a-z, 0-9, '.', '_' and '-' had files of their own; "
                "it is kept at %s from now on",
                self.former,
                self.path,
            )
        return text

    def save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, self.path)

    def set_aside(self, stamp: str) -> str | None:
        # A former file read in its place stays: it may be another server's book too.
        if not self.path.exists():
            return None
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        os.replace(self.path, aside)
        return str(aside)

    def close(self) -> None:
        return None


class BookTable(_Stored):
    """A server's book as a row of ``mp_alert_books``, by server, in a database."""

    def __init__(self, engine: Engine, server: str) -> None:
        self.engine = engine
        self.server = server
        self.where = f"table {books.name} (server {server!r})"
        self._created = False

    def _create(self) -> None:
        if not self._created:
            create_tables(self.engine, metadata)
            self._created = True

    def _read(self) -> str | None:
        self._create()
        with self.engine.connect() as conn:
            text: str | None = conn.execute(
                select(books.c.book).where(books.c.server == self.server)
            ).scalar()
        return text

    def save(self, text: str) -> None:
        self._create()
        with self.engine.begin() as conn:
            statement = upsert(conn, books).values(
                server=self.server, book=text, saved_at=time.time()
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[books.c.server],
                    set_={"book": text, "saved_at": statement.excluded.saved_at},
                )
            )

    def set_aside(self, stamp: str) -> str | None:
        text = self._read()
        if text is None:
            return None
        aside = f"{self.server}.damaged-{stamp}"
        BookTable(self.engine, aside).save(text)
        return f"table {books.name} (server {aside!r})"

    def close(self) -> None:
        self.engine.dispose()


def encode(state: AlertState, holder: Holder | None = None, released: bool = False) -> str:
    """``state`` as the JSON a store keeps: what a server that starts takes over (its
    counts are left out: Prometheus counters start from zero with a process); with the
    ``holder`` that saves it, now, and whether it lets go of it (``Lease``)."""
    book: dict[str, Any] = {
        "format": FORMAT,
        "active": [_alert(a) for a in state.active],
        "history": [_alert(a) for a in state.history],
        "pending": [[rule, model, since] for (rule, model), since in state.pending.items()],
        "clearing": [[rule, model, since] for (rule, model), since in state.clearing.items()],
        "undelivered": list(state.undelivered),
    }
    if holder is not None:
        book["holder"] = {"host": holder.host, "pid": holder.pid, "token": holder.token}
        book["saved_at"] = time.time()
        book["released"] = released
    return json.dumps(book, sort_keys=True)


def decode(text: str) -> AlertState:
    """The book ``encode`` wrote; ValueError if it is not one."""
    try:
        found = json.loads(text)
        if found.get("format") != FORMAT:
            raise ValueError(f"format {found.get('format')!r}, not {FORMAT}")
        return AlertState(
            active=tuple(_read_alert(a) for a in found["active"]),
            history=tuple(_read_alert(a) for a in found["history"]),
            undelivered=tuple(found["undelivered"]),
            pending={(r, m): float(s) for r, m, s in found["pending"]},
            clearing={(r, m): float(s) for r, m, s in found["clearing"]},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an alert book: {exc!r}") from exc


def lease_of(text: str) -> Lease | None:
    """Who saved the book ``encode`` wrote (None: it does not say); ValueError if it is no
    book."""
    try:
        found = json.loads(text)
        holder = found.get("holder")
        if holder is None:
            return None
        return Lease(
            Holder(str(holder["host"]), int(holder["pid"]), str(holder["token"])),
            float(found["saved_at"]),
            bool(found["released"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an alert book: {exc!r}") from exc


def _alert(alert: Alert) -> dict[str, Any]:
    return {
        # Kept: an id derived again at the next start changed with the machine's name.
        "id": alert.id,
        "rule": alert.rule,
        "model": alert.model,
        "severity": alert.severity,
        "message": alert.message,
        "value": alert.value,  # NaN as JSON's NaN extension: read back as itself
        "since": alert.since,
        "resolved_at": alert.resolved_at,
        # What a held data drift's report and gauges hold over a restart (``Alert.drifted``).
        "drifted": list(alert.drifted),
    }


def _read_alert(found: dict[str, Any]) -> Alert:
    """An alert ``_alert`` wrote (or a release before ``drifted`` was kept: none held)."""
    return Alert(**{**found, "drifted": tuple(found.get("drifted", ()))})


def unreadable(exc: BaseException) -> bool:
    """Whether ``exc`` is one that ``BookStore.load`` or ``save`` raise for a book they
    cannot read or write (and the server goes on without)."""
    return isinstance(exc, OSError | ValueError | SQLAlchemyError)
