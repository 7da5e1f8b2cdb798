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
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from modelpilot.monitoring.alerts import AlertBook, AlertRules, AlertState, Condition
from modelpilot.monitoring.siblings import WorkerExchange


class AlertKeeper:
    """This process's part in the alerts: deciding on them, or reading worker 0's book."""

    def __init__(
        self,
        webhook_url: str | None,
        exchange: WorkerExchange | None,
        rules: AlertRules | None = None,
    ) -> None:
        self.exchange = exchange
        self.decides = exchange is None or exchange.index == 0
        self._lock = threading.Lock()  # the webhook's thread writes the book too
        self.book = AlertBook(
            webhook_url if self.decides else None,
            on_delivered=self.publish if exchange is not None else None,
            rules=rules,
        )
        if self.decides and exchange is not None and exchange.inherited_alerts:
            self.book.carry_on(exchange.inherited_alerts)

    def update(self, conditions: Iterable[Condition], now: float) -> None:
        """Apply a round's verdicts (where this process decides), and publish the book."""
        if self.decides:
            with self._lock:
                self.book.update(conditions, now)
        self.publish()

    def publish(self) -> None:
        """Write the book for the other workers, and for the worker that may replace this
        one (with workers, where this process decides)."""
        if self.exchange is None or not self.decides:
            return
        with self._lock:
            state = self.book.state()
            self.exchange.publish_alerts(state)

    def state(self) -> AlertState:
        """The active alerts, their history and counts, as every worker answers them."""
        if self.exchange is None:
            with self._lock:
                return self.book.state()
        return self.exchange.alerts() or AlertState()
