"""The monitor's thread: it first puts the inference log's labels back (``restore``; again
each round until the log is read, if it failed), then hands queued calls over (unless the
event loop does) and evaluates every ``evaluate_seconds``, until ``Monitor.stop``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from modelpilot.errors import RegistryUnavailable
from modelpilot.monitoring import monitor_labels
from modelpilot.repeated_errors import first_line

if TYPE_CHECKING:
    from modelpilot.monitoring.monitor import Monitor

# Said as the monitor's own, as it was before it moved here.
logger = logging.getLogger("modelpilot.monitoring.monitor")


def run(self: Monitor) -> None:
    """The thread's work, from ``Monitor.start`` to ``Monitor.stop``."""
    if self._restore:
        self._served_before = self._serving()  # their labels are restored now
        if self.exchange is not None:
            # The restore holds this worker's first round, and the snapshot it ends with,
            # for seconds: the figures it has already go out first (scrapes waited 5 s
            # for them, then went without).
            try:
                self.exchange.publish_metrics()
            except OSError:
                logger.exception("could not publish this worker's metrics snapshot")
        monitor_labels.restore_quietly(self)
    while not self._stopping.is_set():
        self._wake.wait(pause(self))
        self._wake.clear()
        try:
            if self._unattended:  # else the loop's timer hands the calls over
                self._ship()
            if time.time() - _last_round(self) >= self.evaluate_seconds:
                self._round_at = time.time()
                # A restore the log failed is tried again each round until it is read: once
                # only, a PostgreSQL blip at start-up left the quality windows without the
                # last day's labels for the server's life (the drift windows came back).
                # While the log is out of reach, other servers' labels wait for it too.
                reached = monitor_labels.restore_pending(self)
                if reached and self.shares_labels:
                    monitor_labels.catch_up_quietly(self)
                elif reached:  # so that a server coming reads from now (``catch_up_labels``)
                    self.labels_read_to = time.time()
                if self._restore and reached:
                    monitor_labels.restore_returned(self)
                self._evaluate()
                self.restoring = self.restoring and not (
                    restored(self) and not self._labels_unrestored
                )
        except RegistryUnavailable as exc:
            # Its database out of reach: the registry says where and why (once a minute).
            self._failures += 1
            self._errors.error("round", "monitoring round cut short: %s", first_line(exc))
        except Exception as exc:
            # Once a minute, with the traceback the first time: a round failing every
            # interval would else bury the rest of the log.
            self._failures += 1
            self._errors.error(
                ("round", type(exc)),
                "monitoring round failed; carrying on: %s",
                first_line(exc),
                exc_info=True,
            )


def _last_round(self: Monitor) -> float:
    """When the last round began, or the last evaluation closed its interval if later
    (``time.time``): a round that fails before it evaluates waits its interval too, rather
    than being tried again at once, in a loop, for as long as it fails."""
    return max(self._last_evaluation, self._round_at)


def restored(self: Monitor) -> bool:
    """Whether the server's restore is done, after an evaluation of this thread: this
    process's own, where it restores (before its first evaluation); else worker 0's, which
    has evaluated once it has published its alert book (with the server's start, after its
    restore: its snapshots may come sooner, published for scrapes)."""
    return self.exchange is None or self._restore or self.exchange.alerts() is not None


def pause(self: Monitor) -> float:
    """Seconds the thread may sleep: until the next evaluation, when the event loop hands
    the calls over; at most ``tick_seconds`` while the thread must hand them over itself.

    (A thread that wakes while the loop is busy waits for the interpreter lock, then
    takes it from the loop: no reason to, four times a second, for nothing to do.)
    """
    pause = _last_round(self) + self.evaluate_seconds - time.time()
    if not self._ships_on_loop or (self._unattended and self._queue):
        pause = min(pause, self.tick_seconds)
    return max(pause, 0.0)
