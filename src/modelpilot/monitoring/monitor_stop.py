"""A ``Monitor``'s stop, bounded: the last evaluation, the tap's close, the webhook's last
deliveries and the alert book's last save, each waited for only as long as the shutdown's
budget allows.

The last evaluation and the alert keeper's close run in threads of their own, left if not
done in time: either may wait for a database that does not answer (a book saved, a version
looked up), 10 s a query. The book's last save, after the tap had used its 10 s, stopped a
tester's server 24 s after SIGTERM with its PostgreSQL silent, past the budget the README
gives Kubernetes' ``terminationGracePeriodSeconds`` (5 + 20 + 10 + 5 s).

``stop`` is the body of ``Monitor.stop``, and takes the monitor as ``self``; it is called only
from there."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelpilot.monitoring.monitor import Monitor

# Said as the monitor's own, as it was before it moved here.
logger = logging.getLogger("modelpilot.monitoring.monitor")

STOP_SECONDS = 10.0
"""How long ``Monitor.stop`` takes at most before the webhook's last deliveries: the last
evaluation and the tap's close (the monitoring process writing what it holds to the inference
log) share it, and a thread or process that is not done by then is left or killed (what had
not been written is lost, and the log says so). The webhook's last deliveries and the alert
book's last save run beside the tap's close, and are left if not done
``WEBHOOK_CLOSE_SECONDS`` after these (the log says so). A server's shutdown is budgeted in
the README: its drain, its grace, these seconds and the webhook's."""


def stop(self: Monitor, by: float, webhook_seconds: float) -> None:
    """Stop ``self``: its thread, the last evaluation and the tap's close by ``by``
    (``time.monotonic``); the alert keeper's close, begun beside the tap's, by
    ``webhook_seconds`` after it."""
    self.tap.closing(by)
    self.keeper.closing()
    self._stopping.set()
    self._wake.set()
    if self._thread is not None:
        self._thread.join(timeout=max(by - time.monotonic(), 0.0))
        self._thread = None
    self._ship()
    if not _done_by(_started(self._evaluate, "the last evaluation"), by):
        logger.error(
            "stopping monitoring: the last evaluation was not done in time; left (the tap "
            "closes without it)"
        )
    # The webhook's last deliveries, then the book kept: beside the tap's close, which they
    # do not wait for (the alerts are judged).
    keeper = _started(self.keeper.close, "closing the alerts")
    self.tap.close()  # writes all it took to the inference log
    if not _done_by(keeper, by + webhook_seconds):
        store = self.keeper.store
        logger.error(
            "stopping monitoring: the alert webhook's last deliveries and the alert book's "
            "last save were not done in time; left%s",
            ""
            if store is None
            else f" (the book at {store.where} stays as last saved: the next start may "
            "announce the alerts firing now again, under new ids)",
        )
    if self.sharers is not None:
        self.sharers.close()


def _started(work: Callable[[], None], what: str) -> threading.Thread:
    """``work`` running in a thread of its own, its failure logged: a daemon, which the
    process does not wait for at its exit (``stop`` waits for it as long as its budget
    allows)."""

    def run() -> None:
        try:
            work()
        except Exception:
            logger.exception("stopping monitoring: %s failed", what)

    thread = threading.Thread(target=run, name="modelpilot-monitor-stop", daemon=True)
    thread.start()
    return thread


def _done_by(thread: threading.Thread, by: float) -> bool:
    """Whether ``thread`` ended by ``by`` (``time.monotonic``); if not, it is left."""
    thread.join(max(by - time.monotonic(), 0.0))
    return not thread.is_alive()
