"""A ``Tap`` in a process of its own, so that monitoring never holds up serving.

In the server's process the monitor's per-prediction work (drift and prediction binning,
encoding and writing the inference log) once cost 7-12% of serving throughput, although its
thread used about 4% of one core: while it held the interpreter lock the event loop stood
still, and every handover of the lock cost the loop more than the work it let through.
(Binning and logging have been made cheaper since; in the side-by-side benchmark in
docs/benchmarks.md a thread now costs the serving process 5-8% more CPU per request for its
two models, and this way 2.2-5.9%, plus 1.2-2.0 us per request in this process beside it.)

Here the event loop itself hands each round's calls over, every ``Monitor.round_seconds``:
joined into one array per name (``tap.merge``), encoded (``tap_wire``), and written to a pipe
without blocking (what the pipe cannot take yet waits in a buffer, up to ``MAX_PENDING``
bytes; past that a round is dropped and counted). No other thread of the server takes the
lock for it. The child, niced, takes in what the pipe holds every ``TICK_SECONDS``, bins it,
and writes it to the inference log in order, about once a second (``LOG_SECONDS``; before
any lookup or labels, and at shutdown).
Questions (windows, label lookups) go through a second pipe and carry the number of rounds
written before them; the child answers once it has taken that many, so an answer always
includes every call handed over before the question.

The child ignores SIGINT and SIGTERM: the server's shutdown closes it after the last round,
so a signal sent to the whole process group loses nothing. If the server dies, the pipes
close, and the child writes what it has and exits. A program that ends without closing its
taps has them closed on its way out (multiprocessing's own exit hook, which joins children
after a SIGTERM, would otherwise wait for ours forever).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import multiprocessing
import multiprocessing.util  # its exit hook is registered on import: before ours, so after it
import os
import pickle
import select
import signal
import struct
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig, MonitorState
from modelpilot.monitoring.tap import Found, LocalTap, Merged, Relabelled, TapFailed
from modelpilot.monitoring.tap_wire import RoundDecoder, RoundEncoder
from modelpilot.registry.store import Registry

logger = logging.getLogger(__name__)

FRAME = struct.Struct("!Q")
"""Each round on the data pipe: its length, then the round as ``tap_wire`` encodes it."""

MAX_PENDING = 64 << 20
"""Bytes of rounds allowed to wait for room in the pipe; past that, rounds are dropped."""

PIPE_BYTES = 1 << 20
"""Capacity asked of the data pipe (Linux's default ceiling for unprivileged processes)."""

NICENESS = 10
"""Added to the child's nice value: where cores are short, serving goes first, and the child
catches up when the load eases (the pipe and its buffer hold the backlog)."""

TICK_SECONDS = 0.25
"""How often the child takes in what the pipe holds (the pipe and the server's buffer hold
a round's worth and more in between)."""

RESTART_SECONDS = 10.0
"""A child that died is replaced, but not sooner than this after the last start."""

LOG_SECONDS = 1.0
"""How long the child lets taken requests wait to be written to the inference log together:
a transaction per second, not per tick, cost it a fifth less CPU per request. Lookups, labels
and shutdown write them first; if the child itself crashed, the last second would be lost."""

CLOSE_TIMEOUT = 60.0
"""Seconds a closing child gets to write what it holds before it is killed."""


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


class TapProcess:
    """A ``Tap`` whose work runs in a child process. Thread-safe."""

    takes_on_loop = True
    """``take`` only pickles and writes without blocking: fit for the event loop."""

    def __init__(self, spec: TapSpec) -> None:
        self._spec = spec
        self._write_lock = threading.Lock()
        self._control_lock = threading.Lock()
        self._closed = False
        self._started_at = 0.0
        self._failures = 0
        self._child_failures = 0
        self.dropped = 0
        """Requests in rounds dropped: the child fell too far behind, or was gone."""
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        """A child and its pipes: at first, and again after one died (with empty windows)."""
        context = multiprocessing.get_context("spawn")
        self._control, child_control = context.Pipe()
        data_reader, self._data = context.Pipe(duplex=False)
        os.set_blocking(self._data.fileno(), False)
        with contextlib.suppress(OSError, AttributeError):  # Linux only; a hint
            fcntl.fcntl(self._data.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._process = context.Process(
            target=serve,
            args=(data_reader, child_control, self._spec),
            name="modelpilot-monitor",
            daemon=True,
        )
        self._process.start()
        _open.add(self)
        self._started_at = time.monotonic()
        data_reader.close()
        child_control.close()
        self._pending = bytearray()
        self._encoder = RoundEncoder()
        self._rounds = 0
        """Rounds handed to this child (in the pipe or pending)."""

    def _restart(self) -> None:
        """Replace a dead child, at most once every ``RESTART_SECONDS`` (call with the write
        lock held)."""
        if self._process.is_alive() or self._closed:
            return
        if time.monotonic() - self._started_at < RESTART_SECONDS:
            return
        logger.error(
            "the monitoring process died (exit code %s); starting a new one (%s)",
            self._process.exitcode,
            "its windows from the inference log"
            if self._spec.restore_after_crash
            else "its windows empty",
        )
        with self._control_lock:
            self._data.close()
            self._control.close()
            if not self._spec.restore_after_crash:
                self._spec = replace(self._spec, restore=False)
            self._start()
            self.restarts += 1
            self._failures += self._child_failures
            self._child_failures = 0

    @property
    def log_delay(self) -> float:
        """The child takes in the pipe every tick and writes to the log about every
        ``log_seconds``."""
        return TICK_SECONDS + self._spec.log_seconds

    @property
    def failures(self) -> int:
        """Rounds the child failed (as it last said), and rounds lost with a child."""
        return self._failures + self._child_failures

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def take(self, batches: Sequence[Merged]) -> None:
        if not batches:
            return
        with self._write_lock:
            if not self._process.is_alive():
                self._restart()
            # Encoded for the child that is there now (versions go whole once per child).
            blob, versions = self._encoder.encode(batches)
            if (
                self._closed
                or not self._process.is_alive()
                or len(self._pending) + len(blob) > MAX_PENDING
            ):
                self.dropped += sum(len(b.request_ids) for b in batches)
                return
            self._encoder.sent(versions)
            self._rounds += 1
            try:
                self._send(FRAME.pack(len(blob)), blob)
            except TapFailed:
                self._failures += 1  # the next round starts a new child

    def states(self, now: float) -> list[MonitorState]:
        states: list[MonitorState] = self._call("states", now)
        return states

    def lookup(self, model: str, request_ids: Sequence[str]) -> dict[str, Found]:
        found: dict[str, Found] = self._call("lookup", model, list(request_ids))
        return found

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> None:
        self._call("set_labels", model, dict(labels))

    def labelled_since(self, since: float, limit: int) -> list[Relabelled]:
        relabelled: list[Relabelled] = self._call("labelled_since", since, limit)
        return relabelled

    def write(self) -> None:
        self._call("write")

    def close(self) -> None:
        """Have the child take every round, write what it holds and exit.

        A child handed no round has nothing to write (labels are written as they are set):
        it is stopped at once, rather than waited for while it may still be starting up,
        which held a server stopped soon after its start for seconds."""
        if self._closed:
            return
        if self._rounds == 0:
            self._process.kill()
        else:
            with contextlib.suppress(TapFailed, OSError):
                self._call("close")
        with self._write_lock, self._control_lock:
            self._closed = True
            self._data.close()
            self._control.close()
        _open.discard(self)
        self._process.join(CLOSE_TIMEOUT)
        if self._process.is_alive():
            logger.error("the monitoring process did not stop in %.0f s: killed", CLOSE_TIMEOUT)
            self._process.kill()
            self._process.join()

    def _send(self, frame: bytes, blob: bytes) -> None:
        """Write a round to the pipe, straight from ``blob`` when nothing waits before it;
        what does not fit waits in the buffer (with the write lock held)."""
        written = 0
        if not self._pending:
            try:
                written = os.writev(self._data.fileno(), [frame, blob])
            except BlockingIOError:
                pass
            except OSError as exc:
                raise TapFailed(f"the monitoring process is gone ({exc})") from exc
        if written < len(frame):
            self._pending += frame[written:]
            self._pending += blob
        elif written < len(frame) + len(blob):
            self._pending += memoryview(blob)[written - len(frame) :]
        self._push()

    def _push(self) -> None:
        """Write what fits in the pipe now of the pending rounds (with the write lock held)."""
        pending, fd = self._pending, self._data.fileno()
        while pending:
            try:
                written = os.write(fd, memoryview(pending)[:PIPE_BYTES])
            except BlockingIOError:
                return
            except OSError as exc:
                raise TapFailed(f"the monitoring process is gone ({exc})") from exc
            del pending[:written]

    def _flush_pending(self) -> int:
        """Get every pending round into the pipe; returns how many rounds were handed over.

        Waits for room without the write lock, so the event loop's ``take`` never waits for
        the child.
        """
        while True:
            with self._write_lock:
                self._restart()
                self._push()
                if not self._pending:
                    return self._rounds
                fd = self._data.fileno()
            select.select([], [fd], [], 1.0)
            if not self._process.is_alive():
                raise TapFailed("the monitoring process is gone")

    def _call(self, method: str, *args: Any) -> Any:
        if self._closed:
            raise TapFailed("the monitoring process is closed")
        rounds = self._flush_pending()
        message = pickle.dumps((method, rounds, args), protocol=pickle.HIGHEST_PROTOCOL)
        with self._control_lock:
            try:
                self._control.send_bytes(message)
                ok, value, self._child_failures = pickle.loads(self._control.recv_bytes())
            except (OSError, EOFError) as exc:
                raise TapFailed(f"the monitoring process is gone ({exc})") from exc
        if not ok:
            raise TapFailed(f"the monitoring process failed {method}: {value}")
        return value


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
            self.tap.failures += 1
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


_open: weakref.WeakSet[TapProcess] = weakref.WeakSet()
"""Taps whose child was started, until they are closed or dropped."""


@atexit.register
def _close_left_open() -> None:
    """Close the taps still open as this process exits (their rounds are written, as on any
    clean shutdown): their children ignore the SIGTERM that multiprocessing sends at exit,
    then it waits for them, and they for pipes that close only once this process is gone."""
    for tap in list(_open):
        tap.close()


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
        log = InferenceLog(registry.companion_engine("inference-log"), spec.log_max_rows)
    tap = LocalTap(
        registry,
        spec.config,
        log,
        spec.sample_rate,
        spec.join_capacity,
        spec.log_seconds,
        spec.restore,  # before any round is taken: the windows stay in time order
        spec.restore_refs,
    )
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
            except EOFError:  # the server is gone: keep what it handed over
                rounds.catch_up(1 << 62)
                break
            rounds.catch_up(after)
            if method == "close":
                control.send_bytes(pickle.dumps((True, None, tap.failures)))
                break
            try:
                reply = (True, QUERIES[method](tap, *args), tap.failures)
            except Exception as exc:
                logger.exception("monitoring process: %s failed", method)
                reply = (False, f"{type(exc).__name__}: {exc}", tap.failures)
            control.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        tap.close()
        registry.close()
