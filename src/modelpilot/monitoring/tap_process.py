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
bytes; past that a round is dropped and counted, unless nothing waits before it). No other
thread of the server takes the lock for it. The child, niced, takes in what the pipe holds
every ``TICK_SECONDS``, bins it, and writes it to the inference log in order, about once a
second (``LOG_SECONDS``; before any lookup or labels, and at shutdown).
Questions (windows, label lookups) go through a second pipe and carry the number of rounds
written before them; the child answers once it has taken that many, so an answer always
includes every call handed over before the question.

The child ignores SIGINT and SIGTERM: the server's shutdown closes it after the last round,
so a signal sent to the whole process group loses nothing. It is started with them blocked,
for the second or so it takes to import what it needs before it ignores them
(``tap_child.signals_blocked``). If the server dies, the pipes
close, and the child writes what it has and exits. A child that dies is replaced (at once,
unless it keeps dying: see ``tap_restarts``). A question not answered within
``QUESTION_SECONDS`` fails, and the server answers 503 rather than wait with it; the child is
then killed and replaced if it did no work in that time (stopped, or stuck), and left to finish
if it is busy (``tap_watchdog``; its late answer is set aside). The totals a dead child last
told carry on in ``states``, and what it took with it is counted and said (``tap_ledger``).
Nothing the inference log holds may stop the child: what it cannot read is skipped, and a log
it cannot open leaves it monitoring without one.

A program that ends without closing its taps has them closed on its way out (``tap_exit``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import pickle
import select
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from multiprocessing.process import BaseProcess
from typing import Any

from modelpilot.monitoring import tap_exit
from modelpilot.monitoring.monitor_state import MonitorState
from modelpilot.monitoring.tap import TapBusy, TapFailed
from modelpilot.monitoring.tap_batches import Found, Merged, Relabelled
from modelpilot.monitoring.tap_child import FRAME, TICK_SECONDS, serve, signals_blocked
from modelpilot.monitoring.tap_child import TapSpec as TapSpec
from modelpilot.monitoring.tap_ledger import TapLedger
from modelpilot.monitoring.tap_pipe import RoundPipe
from modelpilot.monitoring.tap_restarts import RestartBackoff
from modelpilot.monitoring.tap_watchdog import POLL_SECONDS, Liveness, Watchdog
from modelpilot.monitoring.tap_wire import RoundEncoder

logger = logging.getLogger(__name__)

MAX_PENDING = 64 << 20
"""Bytes of rounds allowed to wait for room in the pipe; past that, rounds are dropped.

A round larger than this on its own is taken when nothing waits before it (so at most this
and one round wait): bounded only by the bytes waiting, one legal request of 60 MiB (under
``max_request_bytes``, 64 MiB) was answered but never monitored, counted as dropped, and its
labels were refused. Its arrays are in this process already; the round holds one copy of them
until the child has read it, as the child reads any round, a pipe's worth at a time."""

QUESTION_SECONDS = 20.0
"""How long the server waits for the child's answer to a question (windows, a label lookup)
before it fails the question (a stopped or stuck child held label posts with no time limit),
and how long a child may do no work (use no CPU: ``tap_watchdog``) while a question waits
before it is taken for hung, killed and replaced. A child's first answer also waits for its
start-up (its windows restored from the log), and gets ``START_SECONDS`` more."""

IDLE_SECONDS: float | None = None
"""How long a child may do no work while a question waits before it is taken for hung (None:
``QUESTION_SECONDS``). A niced child on a machine short of CPU may get none for a while: at
a load of 17 on two cores, half a second went by without a tick of it at times."""

BUSY_SECONDS = 300.0
"""How long a child may work without answering any question before it is taken for stuck
all the same (in a loop that never ends): a busy one is otherwise left to finish."""

START_SECONDS = 60.0

CLOSE_SECONDS = 10.0
"""How long a closing child gets, in all, to take the last rounds, write what it holds and
exit, before it is killed (what it has not written by then is lost, and said).

It comes after the shutdown's drain and grace (5 + 20 s by default), where a pod's
``terminationGracePeriodSeconds`` must leave room for it: Kubernetes kills a pod past that,
losing the rounds all the same. An idle server's child closes in 0.3-0.6 s, and one at 300
requests/s holds about a second of them, written in milliseconds; but a niced child on a
machine short of CPU took 21 s, and it had a minute twice (for its answer, then for its exit).
In a server, the monitor's stop gives its last evaluation and this close one budget
(``monitor_stop.STOP_SECONDS``, through ``closing``).
"""


class TapProcess:
    """A ``Tap`` whose work runs in a child process. Thread-safe."""

    takes_on_loop = True
    """``take`` only pickles and writes without blocking: fit for the event loop."""

    def __init__(self, spec: TapSpec) -> None:
        self._spec = spec
        self._write_lock = threading.Lock()
        self._control_lock = threading.Lock()
        self._closed = False
        self._closing = False
        self._killed_closing = False
        self._by = math.inf
        """When the tap must be closed by (``closing``, ``close``)."""
        self._close_seconds = CLOSE_SECONDS
        """How long it was given, from then (said if the child is killed for it)."""
        self._started_at = 0.0
        self._failures = 0
        self._child_failures = 0
        self._unlogged = 0
        self._child_unlogged = 0
        self._ledger = TapLedger(MAX_PENDING)
        self._killed_for = ""
        """Why this process killed its child (``_hung``), said when it is found dead."""
        self.restarts = 0
        self._backoff = RestartBackoff()
        self._restart_due: float | None = None
        """When the dead child is to be replaced (None: it is not known to be dead)."""
        self._start()

    def _start(self) -> None:
        """A child and its pipes: at first, and again after one died (with empty windows)."""
        context = multiprocessing.get_context("spawn")
        self._control, child_control = context.Pipe()
        data_reader, data_writer = context.Pipe(duplex=False)
        self._data = RoundPipe(data_writer)
        self._process = context.Process(
            target=serve,
            args=(data_reader, child_control, self._spec),
            name="modelpilot-monitor",
            daemon=True,
        )
        with signals_blocked():
            self._process.start()
        tap_exit.opened(self)
        self._started_at = time.monotonic()
        self._answered = False
        data_reader.close()
        child_control.close()
        self._encoder = RoundEncoder()
        self._rounds = 0
        """Rounds handed to this child (in the pipe or pending)."""
        self._liveness = Liveness(self._process.pid)

    def _restart(self) -> None:
        """Replace a dead child, when its wait is over (see ``tap_restarts``; call with
        the write lock held)."""
        if self._process.is_alive() or self._closed or self._closing:
            return  # (a child started while closing would only be waited for, to write nothing)
        now = time.monotonic()
        if self._restart_due is None:  # found dead just now
            lived = now - self._started_at
            wait = self._backoff.died(lived)
            with self._control_lock:  # no answer of the dead child counts from here on
                self._restart_due = now + wait
                lost = self._ledger.died()
            why = self._killed_for or f"died (exit code {self._process.exitcode})"
            self._killed_for = ""
            logger.error(
                "the monitoring process (pid %s) %s, %.0f s after it started; a new one starts "
                "%s, %s. %s",
                self._process.pid,
                why,
                lived,
                f"in {wait:g} s" if wait else "now",
                "its windows from the inference log"
                if self._spec.restore_after_crash
                else "its windows empty",
                lost,
            )
        if now < self._restart_due:
            return
        with self._control_lock:
            self._restart_due = None
            self._data.close()
            self._control.close()
            unserved = self._ledger.started()
            if not self._spec.restore_after_crash:
                self._spec = replace(self._spec, restore=False)
            self._start()
            self.restarts += 1
            self._failures += self._child_failures
            self._child_failures = 0
            self._unlogged += self._child_unlogged
            self._child_unlogged = 0
        if unserved:
            logger.warning(
                "a new monitoring process (pid %s) started, %g s after the last one died: %d "
                "answered requests went unmonitored meanwhile (counted in "
                "modelpilot_monitor_dropped_total)",
                self._process.pid,
                self._backoff.wait,
                unserved,
            )

    @property
    def dropped(self) -> int:
        """Requests handed over but left unmonitored: in rounds refused, as the child was
        too far behind (``MAX_PENDING``) or none ran (one being replaced), and those a child
        that died took with it, handed after it last told its states (``tap_ledger``)."""
        return self._ledger.dropped

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
    def unlogged(self) -> int:
        """Requests the children took but never wrote to the inference log (as they last
        said)."""
        return self._unlogged + self._child_unlogged

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
            requests = sum(len(b.request_ids) for b in batches)
            if self._closed or not self._process.is_alive():
                self._ledger.unserved(requests)
                return
            if self._data.pending and len(self._data.pending) + len(blob) > MAX_PENDING:
                self._ledger.refused(requests)
                return
            self._encoder.sent(versions)
            self._rounds += 1
            self._ledger.handed(requests)
            try:
                self._data.send(FRAME.pack(len(blob)), blob)
            except TapFailed:
                self._failures += 1  # the next round starts a new child

    def states(self, now: float) -> list[MonitorState]:
        """The child's states, and the running totals of those that died before it (as
        each last told them, with empty windows)."""
        process = self._process
        states: list[MonitorState] = self._call("states", now)
        with self._control_lock:
            if process is not self._process or self._restart_due is not None:
                # It died as it answered: its totals carry on as it told them before.
                raise TapFailed("the monitoring process died as it answered; it is replaced")
            return self._ledger.told(states)

    def lookup(self, model: str, request_ids: Sequence[str]) -> dict[str, Found]:
        found: dict[str, Found] = self._call("lookup", model, list(request_ids))
        return found

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> dict[str, bool]:
        held: dict[str, bool] = self._call("set_labels", model, dict(labels))
        return held

    def labelled_since(self, since: float, limit: int) -> list[Relabelled]:
        relabelled: list[Relabelled] = self._call("labelled_since", since, limit)
        return relabelled

    def write(self) -> None:
        self._call("write")

    def closing(self, by: float) -> None:
        """Bound every question from now on by ``by``, and the close too (see ``close``);
        a child that dies or is killed meanwhile is not replaced."""
        self._by = by
        self._close_seconds = max(by - time.monotonic(), 0.0)
        self._closing = True

    def close(self) -> None:
        """Have the child take every round, write what it holds and exit, within
        ``CLOSE_SECONDS`` (by the time given to ``closing``, if that is sooner).

        A child handed no round has nothing to write (labels are written as they are set):
        it is stopped at once, rather than waited for while it may still be starting up,
        which held a server stopped soon after its start for seconds."""
        if self._closed:
            return
        if not self._closing:
            self._by = time.monotonic() + CLOSE_SECONDS
            self._closing = True
        by = self._by
        if self._rounds == 0:
            self._process.kill()
        else:
            with contextlib.suppress(TapFailed, OSError):
                self._call("close", by=by)
        with self._write_lock, self._control_lock:
            self._closed = True
            self._data.close()
            self._control.close()
        tap_exit.closed(self)
        self._process.join(max(by - time.monotonic(), 0.0))
        if self._process.is_alive():
            self._hung(self._process, "close")
            self._process.join()

    def _flush_pending(self, method: str, timeout: float | None, by: float | None = None) -> int:
        """Get every pending round into the pipe; returns how many rounds were handed over.

        Waits for room without the write lock, so the event loop's ``take`` never waits for
        the child. A child that takes nothing from the pipe for the time a question gets
        (``_deadline``) fails the question, and is killed if it is hung (``_judge``); one that
        is slowly catching up is waited for.
        """
        progress_at = time.monotonic()
        left_over = -1
        while True:
            with self._write_lock:
                self._restart()
                self._data.push()
                if not self._data.pending:
                    return self._rounds
                if len(self._data.pending) != left_over:
                    progress_at, left_over = time.monotonic(), len(self._data.pending)
                fd = self._data.fileno()
                process, liveness = self._process, self._liveness
            left = self._deadline(progress_at, timeout, by) - time.monotonic()
            select.select([], [fd], [], min(max(left, 0.0), POLL_SECONDS))
            if not process.is_alive():
                raise TapFailed("the monitoring process is gone")
            liveness.work.idle_for()
            if left <= 0:
                hard = self._hard(progress_at, timeout, by)
                if self._judge(process, liveness, method, progress_at, hard):
                    raise TapFailed(self._no_answer(method))
                raise TapBusy(self._busy(liveness, method, progress_at))  # rounds wait on

    def _deadline(self, since: float, timeout: float | None, by: float | None = None) -> float:
        """When a question asked at ``since`` is past waiting for (of the child there is now:
        a question may replace a dead one); never later than ``by``, nor than the time the
        server's shutdown gives (``closing``)."""
        if timeout is not None:
            deadline = since + timeout
        elif self._answered:
            deadline = since + QUESTION_SECONDS
        else:
            deadline = max(since, self._started_at + START_SECONDS) + QUESTION_SECONDS
        return min(deadline, self._hard(since, timeout, by))

    def _hard(self, since: float, timeout: float | None, by: float | None) -> float:
        """When a question asked at ``since`` is given up on, and the child killed, however
        busy it is: ``timeout`` after, ``by``, or the shutdown's time (``closing``)."""
        hard = self._by if by is None else min(by, self._by)
        return hard if timeout is None else min(hard, since + timeout)

    def _call(
        self, method: str, *args: Any, timeout: float | None = None, by: float | None = None
    ) -> Any:
        """Ask the child; TapFailed if it is gone, or does not answer in time (see
        ``QUESTION_SECONDS``; ``timeout`` instead, if given; by ``by`` at the latest): then
        it is killed, to be replaced, unless it is busy (TapBusy; ``_judge``)."""
        if self._closed:
            raise TapFailed("the monitoring process is closed")
        rounds = self._flush_pending(method, timeout, by)
        message = pickle.dumps((method, rounds, args), protocol=pickle.HIGHEST_PROTOCOL)
        asked = time.monotonic()
        if not self._control_lock.acquire(
            timeout=max(self._deadline(asked, timeout, by) - time.monotonic(), 0.0)
        ):
            raise TapFailed(  # another question waits for the child
                f"the monitoring process did not answer {method} in time, as another question "
                "waits for it; try again in a few seconds"
            )
        try:
            process, control, liveness = self._process, self._control, self._liveness
            hard = self._hard(asked, timeout, by)
            # A close is waited for as long as the shutdown allows, if the child works.
            deadline = hard if method == "close" else self._deadline(asked, timeout, by)
            # A hung child may hold the question anywhere (its control pipe full, its answer
            # cut off): killed, its end closes, and the wait ends.
            watchdog = Watchdog(
                deadline, lambda: self._judge(process, liveness, method, asked, hard)
            )
            watchdog.start()
            try:
                control.send_bytes(message)
                while True:
                    if control.poll(min(max(deadline - time.monotonic(), 0.0), POLL_SECONDS)):
                        ok, value, counters = pickle.loads(control.recv_bytes())
                        if liveness.answered():  # to a question given up on: set aside
                            continue
                        break
                    liveness.work.idle_for()
                    if time.monotonic() >= deadline:
                        if watchdog.fired or self._judge(process, liveness, method, asked, hard):
                            raise TapFailed(self._no_answer(method))
                        liveness.owed += 1
                        raise TapBusy(self._busy(liveness, method, asked))
            except (OSError, EOFError) as exc:
                if watchdog.fired or time.monotonic() >= deadline:
                    raise TapFailed(self._no_answer(method)) from exc
                raise TapFailed(f"the monitoring process is gone ({exc})") from exc
            finally:
                watchdog.cancel()
            self._answered = True
            self._child_failures, self._child_unlogged = counters
        finally:
            self._control_lock.release()
        if not ok:
            raise TapFailed(f"the monitoring process failed {method}: {value}")
        return value

    def _judge(
        self, process: BaseProcess, liveness: Liveness, method: str, asked: float, hard: float
    ) -> bool:
        """Whether ``process``, which has kept ``method`` (asked at ``asked``) waiting past its
        time, is hung (``Liveness.hung``), or ``hard`` has come: if so, it is killed (and
        True returned)."""
        idle = QUESTION_SECONDS if IDLE_SECONDS is None else IDLE_SECONDS
        why = liveness.hung(asked, idle, BUSY_SECONDS)
        if why is None and time.monotonic() >= hard:
            why = "its time ran out (the question's, or the shutdown's)"
        if why is None:
            return False
        self._hung(process, method, why)
        return True

    def _busy(self, liveness: Liveness, method: str, asked: float) -> str:
        """A question given up on, the child left to work: its error."""
        idle = QUESTION_SECONDS if IDLE_SECONDS is None else IDLE_SECONDS
        liveness.gave_up(method, asked, QUESTION_SECONDS, idle, BUSY_SECONDS)
        return (
            f"the monitoring process is busy and did not answer {method} in time; "
            "try again in a few seconds"
        )

    def _hung(self, process: BaseProcess, method: str, why: str = "stopped, or stuck") -> None:
        """Kill ``process``, which did not answer ``method`` in time (``why``): the next
        round or question replaces it, as it does a dead one."""
        if process is not self._process or not process.is_alive():
            return
        if self._closing:
            if self._killed_closing:
                return  # killed by the watchdog already, and not yet reaped
            self._killed_closing = True
            logger.error(
                "the monitoring process (pid %s) did not write what it held and exit within "
                "%.0f s of being closed: killed, and what it had not written to the inference "
                "log is lost. It runs niced, so a machine short of CPU slows it: give the "
                "server CPU of its own (a container's CPU request) to stop cleanly",
                process.pid,
                self._close_seconds,
            )
            process.kill()
            return
        # Said, with what it took with it, when it is found dead (``_restart``).
        self._killed_for = f"was killed, as it did not answer {method} in time: {why}"
        process.kill()  # (reaped by whoever next asks whether it is alive)

    @staticmethod
    def _no_answer(method: str) -> str:
        return (
            f"the monitoring process did not answer {method} in time; it is being replaced, "
            "so try again in a few seconds"
        )
