"""The monitoring process's side of a ``tap_process.TapProcess``: what the child is started
with (``TapSpec``), how it takes rounds from the data pipe (``_Rounds``), and its loop
(``serve``), which answers the server's questions (``QUERIES``) on the control pipe.

See ``tap_process`` for how the two sides work together.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from modelpilot.monitoring.inference_log import open_log
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import LocalTap
from modelpilot.monitoring.tap_batches import Merged
from modelpilot.monitoring.tap_wire import RoundDecoder
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
    log_seconds: float = LOG_SECONDS
    restore: bool = False
    """Whether the child's windows start from the inference log (``LocalTap.restore``)."""
    restore_refs: tuple[str, ...] | None = None
    """The references the server serves (None: every model), whose versions are restored."""
    restore_after_crash: bool = False
    """Whether a child started in place of one that died does too (not where sibling
    workers' windows already hold the log's recent requests: they would count twice)."""


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


def serve(reader: Connection, control: Connection, spec: TapSpec) -> None:
    """The child: take rounds from ``reader`` and answer ``control`` until told to close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICENESS)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    location, artifacts = spec.registry
    registry = Registry.open(location, Path(artifacts))
    log = None
    if spec.inference_log:
        log = open_log(registry.companion_engine("inference-log"), spec.log_max_rows)
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
            try:
                reply = (True, QUERIES[method](tap, *args), (tap.failures, tap.unlogged))
            except Exception as exc:
                # Asked again and again while the log is down (a label post each): once a
                # minute in the log, every time in the answer.
                errors.error(
                    (method, type(exc)),
                    "monitoring process: %s failed: %s",
                    method,
                    first_line(exc),
                    exc_info=True,
                )
                reply = (False, f"{type(exc).__name__}: {exc}", (tap.failures, tap.unlogged))
            try:
                control.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            except ConnectionError:  # killed while it waited for the answer
                _server_gone(rounds)
                break
    finally:
        tap.close()
        registry.close()


def _server_gone(rounds: _Rounds) -> None:
    """The server died without closing the control pipe (SIGKILL, the OOM killer, a crash):
    take what it handed over, which the caller writes as it returns, and say so once."""
    rounds.catch_up(1 << 62)  # to the end of the data pipe, which its death closed
    logger.warning(
        "monitoring process: its server process is gone (killed?); writing what it handed "
        "over to the inference log (what it answered since its last handover is lost)"
    )
