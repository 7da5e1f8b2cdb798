"""Which process decides on the alerts, and the alert book every process answers from.

A server alone decides on its alerts and answers from its own book. With ``serve --workers``
every worker sees the same merged reports, but one, worker 0, decides (and alone tells the
webhook): it writes its book to the workers' shared directory whenever the book changes and
whenever the webhook delivers a notification, and every worker answers ``/api/alerts`` and
the alert metrics from that file, so that they agree whichever worker is asked. The worker
that replaces a dead worker 0 takes that book over: its alerts stay active without being
announced again, the rules that wait to fire or to resolve (``AlertRules.for_seconds``,
``keep_firing_seconds``) wait on from when they started, its counts go on, and what the
webhook had not delivered is sent.

The process that decides also keeps its book across the server's restarts (``store``, see
``alert_book_store``): saved whenever it changes, whenever the webhook delivers a notification
and at shutdown (with what the webhook could not deliver by then), and taken over
(``AlertBook.resume``) by the server that starts next, so that its alerts keep their ids and are
not announced again. A worker 0 that replaces a dead one carries on from the workers' book,
which is at least as new.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace

from modelpilot.monitoring.alert_book_store import BookStore, encode, unreadable
from modelpilot.monitoring.alerts import AlertBook, AlertRules, AlertState, Condition
from modelpilot.monitoring.siblings import WorkerExchange
from modelpilot.repeated_errors import RepeatedErrors, first_line

logger = logging.getLogger(__name__)


class AlertKeeper:
    """This process's part in the alerts: deciding on them, or reading worker 0's book."""

    def __init__(
        self,
        webhook_url: str | None,
        exchange: WorkerExchange | None,
        rules: AlertRules | None = None,
        store: BookStore | None = None,
        resume: bool = True,
        server: str | None = None,
    ) -> None:
        """``store``: where the book is kept across restarts (None: it is not); ``resume``:
        whether this process starts from the book kept there (``MODELPILOT_MONITOR_RESTORE``);
        ``server``: this server's name in the webhook's notifications."""
        self.exchange = exchange
        self.decides = exchange is None or exchange.index == 0
        self.store = store if self.decides else None
        self._lock = threading.Lock()  # the webhook's thread writes the book too
        self._saved_decisions: str | None = None
        """The book as last saved to ``store`` (or found there), without its firing alerts'
        figures: saved again only if it differs."""
        self._errors = RepeatedErrors(logger)
        self.book = AlertBook(
            webhook_url if self.decides else None,
            on_delivered=self.publish if exchange is not None or self.store else None,
            rules=rules,
            server=server,
        )
        if self.decides and exchange is not None and exchange.inherited_alerts:
            self.book.carry_on(exchange.inherited_alerts)
        elif self.store is not None and resume:
            self._resume(self.store)

    def _resume(self, store: BookStore) -> None:
        """Take over the book ``store`` kept from this server's last run, if any."""
        try:
            kept = store.load()
        except Exception as exc:
            if not unreadable(exc):
                raise
            logger.warning(
                "alerts start afresh: the alert book kept at %s cannot be read (%s); the "
                "alerts that fired before the restart are announced again under new ids",
                store.where,
                first_line(exc),
            )
            return
        if kept is None:
            # None kept is an empty book kept.
            self._saved_decisions = encode(_without_figures(self.book.state()))
            return
        self.book.resume(kept)
        if kept.active:
            logger.info(
                "alert book taken over from %s: %d alert(s) firing since before the restart, "
                "%d notification(s) to deliver",
                store.where,
                len(kept.active),
                len(kept.undelivered),
            )

    def update(self, conditions: Iterable[Condition], now: float) -> None:
        """Apply a round's verdicts (where this process decides), and publish the book."""
        if self.decides:
            with self._lock:
                self.book.update(conditions, now)
        self.publish()

    def publish(self) -> None:
        """Write the book for the other workers, and for the worker that may replace this
        one (with workers, where this process decides); and keep it for the next start (where
        it is kept)."""
        if not self.decides:
            return
        with self._lock:
            state = self.book.state()
            if self.exchange is not None:
                self.exchange.publish_alerts(state)
            if self.store is not None:
                self._save(self.store, state)

    def _save(self, store: BookStore, state: AlertState) -> None:
        """Save ``state`` to ``store`` if it changed since last saved, but for the figures of
        its firing alerts; a store that fails is logged (once a minute) and tried again at the
        next change: alerts go on meanwhile.

        The figures (message, value) of a firing alert change with every evaluation: saved
        each time, a book with a full history (200 alerts: 54 kB, 0.5-4 ms to a file,
        13-15 ms to PostgreSQL on loopback) would be rewritten every 2 s. A server that
        takes the book over shows the figures last saved until its first evaluation."""
        decisions = encode(_without_figures(state))
        if decisions == self._saved_decisions:
            return
        try:
            store.save(encode(state))
        except Exception as exc:
            if not unreadable(exc):
                raise
            self._errors.error(
                "save",
                "could not keep the alert book at %s (%s): a restart now would announce the "
                "firing alerts again under new ids",
                store.where,
                first_line(exc),
            )
            return
        self._saved_decisions = decisions

    def close(self) -> None:
        """Deliver what still waits for the webhook (briefly), then keep the book with what
        it could not deliver, which the next start sends."""
        self.book.close()
        self.publish()
        self._errors.flush()
        if self.store is not None:
            self.store.close()

    def state(self) -> AlertState:
        """The active alerts, their history and counts, as every worker answers them."""
        if self.exchange is None:
            with self._lock:
                return self.book.state()
        return self.exchange.alerts() or AlertState()


def _without_figures(state: AlertState) -> AlertState:
    """``state`` without what changes at every evaluation: the message and the value of its
    firing alerts."""
    return replace(state, active=tuple(replace(a, message="", value=0.0) for a in state.active))
