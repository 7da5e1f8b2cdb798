"""The monitoring process's side of a ``tap_process.TapProcess``: what the child is started
with (``TapSpec``, and its shutdown signals blocked: ``signals_blocked``), how it takes rounds
from the data pipe (``_Rounds``), and its loop (``serve``), which answers the server's
questions (``QUERIES``) on the control pipe.

See ``tap_process`` for how the two sides work together.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.resource_tracker
import os
import pickle
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from modelpilot.monitoring.inference_log import InferenceLog, open_log
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import LocalTap
from modelpilot.monitoring.tap_batches import Merged
from modelpilot.monitoring.tap_wire import RoundDecoder
from modelpilot.registry.outage import Outage, cause, is_outage
from modelpilot.registry.store import Registry
from modelpilot.repeated_errors import RepeatedErrors, first_line

logger = logging.getLogger(__name__)

FRAME = struct.Struct("!Q")
"""Each round on the data pipe: its length, then the round as ``tap_wire`` encodes it."""

PIPE_BYTES = 1 << 20
"""Capacity asked of the data pipe (Linux's default ceiling for unprivileged processes)."""

NICENESS = 10
"""Added to the child's nice value: where cores are short, serving goes first, and the child
catches up when the load eases (the pipe and its buffer hold the backlog)."""

TICK_SECONDS = 0.25
"""How often the child takes in what the pipe holds (the pipe and the server's buffer hold
a round's worth and more in between)."""

LOG_SECONDS = 1.0
"""How long the child lets taken requests wait to be written to the inference log together:
a transaction per second, not per tick, cost it a fifth less CPU per request. Lookups, labels
and shutdown write them first; if the child itself crashed, the last second would be lost."""


LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
"""The child's log lines, where the server's own format cannot be found (see ``TapSpec``)."""


def _server_log_format() -> str:
    """The format of this process's log lines, as whoever configured logging set it (the
    server: ``server.logs``): the child's lines, without the time and pid every other line
    had, were mis-parsed by log shippers that read the server's format."""
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None and handler.formatter._fmt:
            return handler.formatter._fmt
    return LOG_FORMAT


def _server_log_level() -> int:
    return logging.getLogger().getEffectiveLevel()


@dataclass(frozen=True, slots=True)
class TapSpec:
    """What the child needs to build its ``LocalTap``."""

    registry: tuple[str, str]
    """``Registry.address()``: the child opens the registry itself."""
    config: MonitorConfig
    inference_log: bool = True
    log_max_rows: int = 200_000
    sample_rate: float = 1.0
    join_capacity: int = 100_000
    """How many of the newest requests labels join in memory where the log does not hold
    them (``LocalTap``): the server gives ``log_max_rows``."""
    log_seconds: float = LOG_SECONDS
    restore: bool = False
    """Whether the child's windows start from the inference log (``LocalTap.restore``)."""
    restore_refs: tuple[str, ...] | None = None
    """The references the server serves (None: every model), whose versions are restored."""
    restore_after_crash: bool = False
    """Whether a child started in place of one that died does too (not where sibling
    workers' windows already hold the log's recent requests: they would count twice)."""
    advised: bool = False
    """Whether the server's process has said what the log's database needs
    (``inference_log.advise``), so that the child does not say it again."""
    log_format: str = field(default_factory=_server_log_format)
    """The format of the child's log lines: the server's (taken where the spec is made)."""
    log_level: int = field(default_factory=_server_log_level)
    """The least level the child logs: the server's (it said when the log came back at
    INFO, which the child's WARNING once left out)."""


QUERIES: dict[str, Callable[..., Any]] = {
    "states": LocalTap.states,
    "lookup": LocalTap.lookup,
    "set_labels": LocalTap.set_labels,
    "labelled_since": LocalTap.labelled_since,
    "write": LocalTap.write,
}
"""What the server may ask the child (besides ``close``)."""


class _Rounds:
    """The child's end of the data pipe: rounds as they arrive, taken in order."""

    def __init__(self, reader: Connection, tap: LocalTap) -> None:
        self.reader = reader
        self.tap = tap
        self._decoder = RoundDecoder(tap.registry)
        self.closed = False
        self._received = 0
        self._ready: list[Merged] = []
        # Read into the same memory every time: a new chunk per read cost page faults and a
        # copy of every byte. Only ``_buffer[:_filled]`` holds data.
        self._buffer = bytearray(PIPE_BYTES)
        self._filled = 0
        os.set_blocking(reader.fileno(), False)

    def catch_up(self, rounds: int = 0) -> None:
        """Take every round the pipe holds, and wait for more until ``rounds`` have come.

        All of them in one ``take`` (whose log writes wait for ``TapSpec.log_seconds``),
        and one ``take`` even when none came, so that waiting writes are made when due.
        """
        self._read()
        while self._received < rounds and not self.closed:
            select.select([self.reader.fileno()], [], [])
            self._read()
        batches, self._ready = self._ready, []
        try:
            self.tap.take(batches)  # also when none came: the log's writes may be due
        except Exception:
            self.tap.count_failure()
            logger.exception("monitoring process: a round failed; carrying on")

    def _read(self) -> None:
        """Read what the pipe holds now; set aside the batches of every complete round."""
        fd = self.reader.fileno()
        while True:
            if len(self._buffer) - self._filled < PIPE_BYTES:  # room for a pipe's worth
                self._buffer.extend(bytes(max(PIPE_BYTES, len(self._buffer))))
            with memoryview(self._buffer) as free:
                try:
                    got = os.readv(fd, [free[self._filled :]])
                except BlockingIOError:
                    break
            if not got:
                self.closed = True
                break
            self._filled += got
        buffer, filled, start = self._buffer, self._filled, 0
        with memoryview(buffer) as view:
            while filled - start >= FRAME.size:
                (size,) = FRAME.unpack_from(buffer, start)
                end = start + FRAME.size + size
                if filled < end:
                    break
                self._ready.extend(self._decoder.decode(view[start + FRAME.size : end]))
                self._received += 1
                start = end
        # What is left of a round the server is still writing moves to the front.
        self._filled = filled - start
        if self._filled == 0 and len(buffer) > 4 * PIPE_BYTES:  # a backlog has been taken
            self._buffer = bytearray(PIPE_BYTES)
        elif start:
            buffer[: self._filled] = buffer[start:filled]


SHUTDOWN_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM on this thread while a child starts: the child inherits the
    mask across the spawn's exec, and they stay pending until it ignores them (``serve``,
    which discards them). The server's own handling is untouched: a signal meanwhile goes to
    another of its threads, or to this one once they are unblocked.

    The child ignored them only once its imports were done, a second or so after it
    started: a signal to the whole process group then (systemd's ``KillMode=control-group``,
    ``timeout``, a terminal's Ctrl-C) killed it, two errors with tracebacks came of an
    ordinary stop, and a new child started while the server shut down. (multiprocessing's
    resource tracker starts its process the same way; it is started first, here, as its start
    unblocks them on its way out, whatever they were.)"""
    multiprocessing.resource_tracker.ensure_running()  # (the spawn's Popen starts it anyway)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def serve(reader: Connection, control: Connection, spec: TapSpec) -> None:
    """The child: take rounds from ``reader`` and answer ``control`` until told to close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Started with them blocked (``signals_blocked``); ignored now, any pending is
    # discarded, and they need no blocking.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
    os.nice(NICENESS)
    logging.basicConfig(level=spec.log_level, format=spec.log_format)
    try:
        registry, log = _open(spec)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # One line, not the ~100 of the traceback multiprocessing prints of an error that
        # ends a process: this comes at every start until the database answers again.
        logger.error("monitoring process: cannot start: %s", cause(exc))
        sys.exit(1)
    tap = LocalTap(
        registry,
        spec.config,
        log,
        spec.sample_rate,
        spec.join_capacity,
        spec.log_seconds,
        spec.restore,  # before any round is taken: the windows stay in time order
        spec.restore_refs,
        log_missing=spec.inference_log,
    )
    if spec.inference_log and log is None:
        tap.count_failure()
    errors = RepeatedErrors(logger)
    outages = LogOutages.of(logger)
    """Questions failing because the log's database is out of reach (see ``_answer``)."""
    rounds = _Rounds(reader, tap)
    try:
        # The pipe is read on a timer, not whenever the server writes to it: a child woken by
        # every write tends to be run on the writer's core, where it stops the event loop.
        deadline = time.monotonic() + TICK_SECONDS
        while True:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not wait([control], timeout):
                rounds.catch_up()
                deadline = time.monotonic() + TICK_SECONDS
                continue
            try:
                method, after, args = pickle.loads(control.recv_bytes())
            except (EOFError, ConnectionError):
                _server_gone(rounds)
                break
            rounds.catch_up(after)
            if method == "close":
                tap.close()  # first: what it cannot write counts, and is told
                with contextlib.suppress(ConnectionError):  # killed since: it asks no more
                    control.send_bytes(pickle.dumps((True, None, (tap.failures, tap.unlogged))))
                break
            reply = _answer(tap, method, args, errors, outages)
            try:
                control.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            except ConnectionError:  # killed while it waited for the answer
                _server_gone(rounds)
                break
    finally:
        tap.close()
        registry.close()


LOG_READS = frozenset({"lookup", "labelled_since"})
"""The questions whose answer reads the inference log: one that worked says that it answers
questions again. (``states`` never reads it, and ``write`` keeps its own failures.)"""

LOG_WRITES = frozenset({"set_labels"})
"""The questions whose answer writes to the inference log: one that worked says that it takes
labels again. Kept apart from the reads: on a full disk reads go on working, and each, ending
the outage, let the next label post's failure be logged again (an error and a false "answers
again" for every label posted)."""


@dataclass(slots=True)
class LogOutages:
    """The inference log failing the server's questions: reads and writes each an outage of
    their own, ended only by a question of their own kind."""

    reads: Outage
    writes: Outage

    @classmethod
    def of(cls, logger: logging.Logger) -> LogOutages:
        return cls(Outage(logger), Outage(logger))

    def failed(self, method: str, exc: BaseException) -> None:
        outage = self.writes if method in LOG_WRITES else self.reads
        outage.failed(exc, "monitoring process: %s failed: %s", method, cause(exc))

    def worked(self, method: str) -> None:
        """Say the end of the outage that ``method`` working ends, if one was going on."""
        if method in LOG_WRITES:
            ended, what = self.writes.over(), "takes labels again"
        elif method in LOG_READS:
            ended, what = self.reads.over(), "answers questions again"
        else:
            return
        if ended is not None:
            logger.info(
                "monitoring process: the inference log %s, after %.0f s (%d failed)",
                what,
                *ended,
            )


def unreachable(exc: BaseException) -> str:
    """What a label post's client is told of a log out of reach: what happened, in words that
    name no host, port or driver, and what to do."""
    said = cause(exc).lower()
    if "full" in said or "no space" in said:
        return (
            "the inference log's disk is full, so it takes no labels; post them again once "
            "space is freed on it"
        )
    if "locked" in said or "busy" in said:
        return (
            "the inference log's database is held by another process (busy) for now; retry "
            "in a few seconds"
        )
    return "the inference log's database does not answer for now; retry in a few seconds"


def _open(spec: TapSpec) -> tuple[Registry, InferenceLog | None]:
    """The registry and the inference log (None if not wanted, or it cannot be opened)."""
    location, artifacts = spec.registry
    registry = Registry.open(location, Path(artifacts))
    if not spec.inference_log:
        return registry, None
    try:
        engine = registry.companion_engine("inference-log")
        return registry, open_log(engine, spec.log_max_rows, advise=not spec.advised)
    except BaseException:
        registry.close()
        raise


def _answer(
    tap: LocalTap, method: str, args: Any, errors: RepeatedErrors, outages: LogOutages
) -> tuple[bool, Any, tuple[int, int]]:
    """The reply to the server's question ``method``: (whether it worked, its answer or what
    went wrong, the tap's counters).

    Asked again and again while the log is down (a label post each): once a minute in the
    log, every time in the answer. A database out of reach is said in one line, not with the
    ~60 lines of its traceback, and once when it answers again (``LogOutages``: a read that
    works does not end an outage of writes); the answer, which a label post's 503 shows its
    client, names no host, port or driver (``unreachable``)."""
    try:
        value = QUERIES[method](tap, *args)
    except Exception as exc:
        if is_outage(exc):
            outages.failed(method, exc)
            said = unreachable(exc)
        else:
            errors.error(
                (method, type(exc)),
                "monitoring process: %s failed: %s",
                method,
                first_line(exc),
                exc_info=True,
            )
            said = f"{type(exc).__name__}: {exc}"
        return False, said, (tap.failures, tap.unlogged)
    outages.worked(method)
    return True, value, (tap.failures, tap.unlogged)


def _server_gone(rounds: _Rounds) -> None:
    """The server died without closing the control pipe (SIGKILL, the OOM killer, a crash):
    take what it handed over, which the caller writes as it returns, and say so once."""
    rounds.catch_up(1 << 62)  # to the end of the data pipe, which its death closed
    logger.warning(
        "monitoring process: its server process is gone (killed?); writing what it handed "
        "over to the inference log (what it answered since its last handover is lost)"
    )
