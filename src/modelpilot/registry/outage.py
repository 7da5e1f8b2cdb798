"""A database (or the disk under it) that stops answering for a while: said when it starts,
once a minute while it lasts, and once when it answers again.

A PostgreSQL registry down for 20 s filled a tester's log with an alias-refresh error every
2 s and ~60-line tracebacks from the monitoring process, and nothing said when it came back.
A connection refused, a disk full, is an expected condition whose cause fits on one line;
tracebacks are kept for the errors nobody expected.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import NamedTuple

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from modelpilot.errors import Unavailable
from modelpilot.repeated_errors import REPEAT_SECONDS, RepeatedErrors

_OUTAGES = (DisconnectionError, PoolTimeout, OSError, Unavailable)

SQLITE_OUTAGES = ("locked", "busy", "disk", "full", "unable to open", "out of memory")
"""Words of SQLite's errors that say its file is out of reach for now. SQLite calls every
error it meets running a statement "operational", a table that does not exist or a syntax
error too: those are no outage, and keep their traceback."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says that a database or a disk is out
    of reach for now (a connection refused or dropped, no connection free in time, a disk
    full, a file locked too long), rather than that something is wrong with the code or the
    data."""
    current: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; a cycle is not followed for ever
        if current is None:
            return False
        if isinstance(current, _OUTAGES):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OperationalError):
            orig = current.orig
            if not isinstance(orig, sqlite3.Error):
                return True  # PostgreSQL's (psycopg's): the server or the link to it
            return any(word in str(orig).lower() for word in SQLITE_OUTAGES)
        current = current.__cause__
    return False


def cause(exc: BaseException) -> str:
    """What ``exc`` says, on one line: a driver's own words, without SQLAlchemy's wrapping
    (the statement, the link to its help page)."""
    said = getattr(exc, "orig", None) or exc
    return " ".join(str(said).split()) or type(said).__name__


class Ended(NamedTuple):
    """An outage that is over."""

    seconds: float
    failures: int


class Outage:
    """The failures of one thing while it is down: the first of each kind logged at once,
    repeats once every ``seconds`` with how many came (a ``RepeatedErrors`` for each outage),
    and the end handed, once, to whoever next sees it work (``over``), to say so in its own
    words.

    A new outage is logged at once again, however soon after the last. Thread-safe."""

    def __init__(
        self, logger: logging.Logger, seconds: float = REPEAT_SECONDS, level: int = logging.ERROR
    ) -> None:
        self._logger = logger
        self.seconds = seconds
        self.level = level
        self._lock = threading.Lock()
        self._since: float | None = None
        """When the outage going on began; None while nothing fails."""
        self._said = RepeatedErrors(logger, seconds, level)
        """What the outage going on has logged, by kind of error: new for each outage."""
        self.failures = 0
        """Failures in the outage going on (or the last one)."""

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(
        self, exc: BaseException, message: str, *args: object, expected: bool | None = None
    ) -> None:
        """Count a failure, and log ``message % args`` unless one of ``exc``'s kind was
        logged in the last ``seconds``. With ``exc``'s traceback the first time, unless it
        was ``expected`` (by default: it is an outage, ``is_outage``)."""
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                self.failures = 0
                self._said = RepeatedErrors(self._logger, self.seconds, self.level)
            self.failures += 1
            said = self._said
        quiet = is_outage(exc) if expected is None else expected
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        said.error(kind, message, *args, exc_info=None if quiet else exc)

    def over(self) -> Ended | None:
        """The outage that this success ended (how long it lasted, how often it failed), to
        the first caller after it; None when nothing was failing. Costs an attribute read
        when nothing was."""
        if self._since is None:
            return None
        with self._lock:
            if self._since is None:
                return None
            ended = Ended(time.monotonic() - self._since, self.failures)
            self._since = None
            return ended
