"""A PostgreSQL server that goes silent: how long a connection waits for it, and what waits
no more once it has been silent.

A server that refuses (stopped, its port closed) fails every query at once, and the outage
handling of its callers takes over (503, one log line a minute). One that goes silent (a
network partition, a firewall that drops packets, a frozen host or process, a proxy stuck in
between) answered nothing and failed nothing: ``connect_timeout`` bounds only the opening of a
connection, and a query on a connection already open (the pool's, and the pool's own ping of
it) waited for the kernel's TCP retries, about 15 minutes, or for ever where the kernel still
acknowledges the bytes (a frozen process). A tester's server then held every request that
needed the registry for good, and its monitoring process, stuck in an inference log write,
was killed for not answering, with the requests it held.

So a connection waits at most ``ANSWER_SECONDS`` for a byte of its server (in libpq's own
waits, and through TCP's ``tcp_user_timeout`` and keepalives for a link gone quiet), then is
closed and fails as a dropped one does; and for ``SILENT_SECONDS`` after that, the engine's
connections and queries fail at once, without waiting again: a caller that asks the database
once a second (the monitoring process writing its log) would else spend its whole time waiting,
each connection of its pool, and each new one, costing the wait again.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import psycopg
import psycopg.pq

ANSWER_SECONDS = 10.0
"""How long a connection waits for its server to send something, in a query or a ping (a
query that streams its rows is never cut: each byte starts the wait again). Longer than the
registry's and the inference log's statements take, waits on their locks included."""

SILENT_SECONDS = 10.0
"""How long after a connection or a query timed out (``ANSWER_SECONDS``, or
``connect_timeout``) the same engine's connections and queries fail at once; the first after
it tries again. A server back from an outage is found again at most this late."""

KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}
"""TCP keepalives for pooled connections left idle: one whose server went away without a
word is closed by the kernel (after ``keepalives_count`` probes) before a query needs it."""


def link_bounds(given: set[str]) -> dict[str, Any]:
    """libpq's connection parameters that bound the link (unless the URL gives them,
    ``given``): keepalives, and ``tcp_user_timeout``, after which the kernel closes a
    connection whose bytes its server never acknowledged."""
    bounds: dict[str, Any] = dict(KEEPALIVES)
    if psycopg.pq.version() >= 120000:  # libpq knows it from PostgreSQL 12 on
        bounds["tcp_user_timeout"] = int(ANSWER_SECONDS * 1000)
    return {key: value for key, value in bounds.items() if key not in given}


class Silence:
    """When an engine's server last failed to answer in time: until ``SILENT_SECONDS`` after
    it, ``check`` fails at once. Thread-safe (one float, written whole)."""

    def __init__(self, seconds: float = SILENT_SECONDS) -> None:
        self.seconds = seconds
        self._since: float | None = None
        self._why = ""

    def heard_nothing(self, why: str) -> None:
        self._why = why
        self._since = time.monotonic()

    def check(self) -> None:
        """Raise, a driver's OperationalError, if the server was silent within ``seconds``."""
        since = self._since
        if since is None:
            return
        ago = time.monotonic() - since
        if ago < self.seconds:
            raise psycopg.OperationalError(
                f"{self._why}; not asked again for {self.seconds - ago:.0f} s"
            )


class AnsweringConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits ``answer_seconds`` at most for its server to send
    something, then is closed and raises: broken, so that the pool drops it and SQLAlchemy
    reports a disconnection (``Registry``'s outage). ``silence`` is told, and checked before
    each wait."""

    answer_seconds: float = ANSWER_SECONDS
    silence: Silence | None = None

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        silence = self.silence
        if silence is not None:
            try:
                silence.check()
            except psycopg.OperationalError:
                self.pgconn.finish()  # like its siblings: its server may be as silent
                raise
        try:
            return super().wait(self._bounded(gen), *args, **kwargs)
        except _NoAnswer:
            # Half a statement may be on its way: nothing can follow it on this connection.
            self.pgconn.finish()
            why = f"the database did not answer in {self.answer_seconds:g} s"
            if silence is not None:
                silence.heard_nothing(why)
            raise psycopg.OperationalError(why) from None

    def _bounded(self, gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        """``gen``, which raises ``_NoAnswer`` once the socket has been ready for nothing
        for ``answer_seconds``. The wait functions send it ``Ready.NONE`` (0) every
        interval (0.1 s) that the socket stays quiet, so that it can give up."""
        deadline = time.monotonic() + self.answer_seconds
        try:
            waiting = next(gen)
            while True:
                ready = yield waiting
                now = time.monotonic()
                if ready:
                    deadline = now + self.answer_seconds
                elif now >= deadline:
                    gen.close()
                    raise _NoAnswer
                waiting = gen.send(ready)
        except StopIteration as done:
            return done.value


class _NoAnswer(Exception):
    """The server sent nothing for ``answer_seconds``."""


def connect(
    silence: Silence, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> AnsweringConnection:
    """A new connection (SQLAlchemy's arguments), unless the server was silent a moment
    ago; a connection that times out (``connect_timeout``) makes it so."""
    silence.check()
    try:
        conn = AnsweringConnection.connect(*cargs, **cparams)
    except psycopg.OperationalError as exc:
        if "timeout expired" in str(exc):  # libpq's and psycopg's words for connect_timeout
            silence.heard_nothing("the database did not answer a new connection in time")
        raise
    conn.silence = silence
    return conn
