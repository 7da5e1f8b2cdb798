"""Whether a monitoring process that keeps a question waiting is busy or hung: its CPU time.

A question once had a fixed time (``tap_process.QUESTION_SECONDS``) to be answered, and a child
past it was killed as stuck. But a child may work on one round for longer than that: a
tester's requests of 8,000 rows x 500 features (41 MB, allowed) took it 20 s and more to bin
and encode for the log on a loaded machine, and its replacement, restoring its windows from
the log for 47 s, was killed by the next such request, again and again. A child at work uses
CPU, however niced and however short the machine is of it; one stopped (SIGSTOP), deadlocked
or waiting for something that never comes uses none. The kernel keeps the count, so the child
needs no beat of its own, and a long call into NumPy or the database driver counts as work.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable

import psutil

from modelpilot.repeated_errors import RepeatedErrors

logger = logging.getLogger("modelpilot.monitoring.tap_process")
"""(Said as the tap's own lines.)"""

STOPPED = frozenset({psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP})

POLL_SECONDS = 0.25
"""How often a waiting question looks at the child (its answer, its CPU time)."""


class ChildWork:
    """The CPU time one child has used, as last looked at, and when it last grew.
    Thread-safe."""

    def __init__(self, pid: int | None) -> None:
        self._process: psutil.Process | None = None
        if pid is not None:
            with contextlib.suppress(psutil.Error):  # gone already: it does no work
                self._process = psutil.Process(pid)
        self._lock = threading.Lock()
        self._cpu = self._read()
        self._moved_at = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the child's CPU time was last seen to grow (looked at now); infinite
        if it is stopped (SIGSTOP, a debugger): it may have worked since it was last looked
        at, but it will do no more."""
        if self._stopped():
            return math.inf
        cpu = self._read()
        now = time.monotonic()
        with self._lock:
            if cpu is not None and cpu != self._cpu:
                self._cpu, self._moved_at = cpu, now
            return now - self._moved_at

    def _stopped(self) -> bool:
        if self._process is None:
            return False
        try:
            return self._process.status() in STOPPED
        except psutil.Error:
            return False

    def _read(self) -> float | None:
        if self._process is None:
            return None
        try:
            cpu = self._process.cpu_times()
        except psutil.Error:  # gone, or a zombie
            return None
        return float(cpu.user + cpu.system)


class Liveness:
    """Whether one child that keeps questions waiting is busy or hung, and the answers it
    owes to questions given up on as it worked. Used with the tap's control lock held (but
    ``work``, which is thread-safe)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.work = ChildWork(pid)
        self.owed = 0
        """Answers owed to questions given up on: set aside as they come."""
        self._busy_since: float | None = None
        """Since when its questions have been given up on (None: the last was answered)."""
        self._silent_since: float | None = None
        """Since when it has sent no answer while questions wait (None: none waits)."""
        self._said = RepeatedErrors(logger, level=logging.WARNING)

    def hung(self, asked: float, idle_seconds: float, busy_seconds: float) -> str | None:
        """Why the child, which has kept a question asked at ``asked`` waiting, is hung: it
        did no work for ``idle_seconds``, or sent no answer for ``busy_seconds`` while
        questions waited (working, but in a loop that never ends?); None if it is not."""
        idle = self.work.idle_for()
        silent_since = asked if self._silent_since is None else self._silent_since
        silent = time.monotonic() - silent_since
        if idle == math.inf:
            return "it is stopped"
        if idle >= idle_seconds:
            return f"it did no work for {idle:.0f} s (stuck)"
        if silent >= busy_seconds:
            return f"it answered nothing for {silent:.0f} s, working all along (in a loop?)"
        return None

    def gave_up(
        self,
        method: str,
        asked: float,
        question_seconds: float,
        idle_seconds: float,
        busy_seconds: float,
    ) -> None:
        """A question asked at ``asked`` was given up on, the child busy (said once a
        minute)."""
        if self._silent_since is None:
            self._silent_since = asked
        if self._busy_since is None:
            self._busy_since = asked
        self._said.error(
            "busy",
            "the monitoring process (pid %s) is busy (a large round, or its windows restored "
            "from the inference log): it did not answer %s within %g s, but it works, so it is "
            "left to finish. Questions fail until it answers (label posts get 503); it is "
            "replaced only if it does no work for %g s, or answers nothing for %g s",
            self.pid,
            method,
            question_seconds,
            idle_seconds,
            busy_seconds,
        )

    def answered(self) -> bool:
        """An answer came: whether it is owed to a question given up on (then set aside)."""
        if self.owed:
            self.owed -= 1
            self._silent_since = time.monotonic()  # what waits still, from now on
            return True
        self._silent_since = None
        if self._busy_since is not None:
            logger.info(
                "the monitoring process (pid %s) answers again, after %.0f s busy",
                self.pid,
                time.monotonic() - self._busy_since,
            )
            self._busy_since = None
        return False


class Watchdog(threading.Thread):
    """From ``start_at`` (a ``time.monotonic()``) on, calls ``hung`` every ``POLL_SECONDS``
    until it returns True (it killed the child) or the watchdog is cancelled: it ends the
    wait of a question that a hung child holds where the asker cannot look (a send or a
    receive cut off midway)."""

    def __init__(self, start_at: float, hung: Callable[[], bool]) -> None:
        super().__init__(name="modelpilot-monitor-watchdog", daemon=True)
        self._start_at = start_at
        self._hung = hung
        self._cancelled = threading.Event()
        self.fired = False
        """Whether it killed the child."""

    def run(self) -> None:
        if self._cancelled.wait(max(self._start_at - time.monotonic(), 0.0)):
            return
        while not self._cancelled.is_set():
            if self._hung():
                self.fired = True
                return
            self._cancelled.wait(POLL_SECONDS)

    def cancel(self) -> None:
        self._cancelled.set()
