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

Two servers given one name (a named Deployment scaled to two replicas) took over one book and
overwrote each other's alerts in it, without a word, and whichever restarted lost the
resolutions of the other's. So the book says which process keeps it (``Lease``), renewed every
``RENEW_SECONDS``: the server that starts takes it over, and says so if another kept it until
moments ago without letting go of it (killed, or still running); a server that finds its book
saved by another since it last saved it stops keeping it, and says so, as an error once it has
run on for ``SHARED_NAME_SECONDS`` (two servers of one name, not a rolling update).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import replace

from modelpilot.monitoring.alert_book_salvage import open_alerts
from modelpilot.monitoring.alert_book_store import BookStore, Holder, Lease, encode, unreadable
from modelpilot.monitoring.alert_rules import LOSS_WINDOW_SECONDS, loss_conditions
from modelpilot.monitoring.alerts import AlertBook, AlertRules, AlertState, Condition
from modelpilot.monitoring.loss_history import LossHistory, Lost, workers_lost
from modelpilot.monitoring.siblings import WorkerExchange
from modelpilot.monitoring.webhook import TIMEOUT_SECONDS
from modelpilot.repeated_errors import RepeatedErrors, first_line

logger = logging.getLogger(__name__)

RENEW_SECONDS = 30.0
"""How often the process that keeps a book saves it even unchanged, so that its lease says it
runs (a few kilobytes a write; 15 ms to PostgreSQL for a book with a full history)."""

LEASE_SECONDS = 90.0
"""A book not let go of, saved by another process less than this ago, may be kept by a server
that runs: three renewals, so that one late renewal is no dead server."""

SHARED_NAME_SECONDS = 600.0
"""How long a server whose book another took over may run on before it says, as an error
(and again at each such interval), that two servers share its name. The pod a rolling update
replaces runs beside its successor until that one is ready, and then stops: no error for
that."""


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
        webhook_timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        """``store``: where the book is kept across restarts (None: it is not); ``resume``:
        whether this process starts from the book kept there (``MODELPILOT_MONITOR_RESTORE``);
        ``server``: this server's name in the webhook's notifications; ``webhook_timeout``:
        how long the webhook waits for each answer."""
        self.exchange = exchange
        self.decides = exchange is None or exchange.index == 0
        self.store = store if self.decides else None
        self._lock = threading.Lock()  # the webhook's thread writes the book too
        self._saved_decisions: str | None = None
        """The book as last saved to ``store`` (or found there), without its firing alerts'
        figures: saved again only if it differs."""
        self._errors = RepeatedErrors(logger)
        self.holder = Holder.this_process()
        """Who this process is in the leases of the books it saves."""
        self._kept_at: float | None = None
        """When this process last saved the book (None: it has not)."""
        self.taken: Lease | None = None
        """The lease of the process that took this one's book over while it ran (None: it
        did not): this one no longer keeps it."""
        self._taken_at = self._taken_said = 0.0
        """When this process found its book taken, and when it last said so."""
        self._closing = False
        """Whether the process stops (``closing``): the book is saved by ``close`` only."""
        self.book = AlertBook(
            webhook_url if self.decides else None,
            on_delivered=self.publish if exchange is not None or self.store else None,
            rules=rules,
            server=server,
            webhook_timeout=webhook_timeout,
        )
        self.losses = LossHistory(
            LOSS_WINDOW_SECONDS,
            time.time(),
            # A server alone starts counting with this process; with workers, the siblings'
            # counters may hold what they lost before (this worker replaces a dead worker 0).
            baseline={0: Lost()} if exchange is None else None,
            workers=exchange is not None,
        )
        """What monitoring lost, over the server, as this process's evaluations saw it (where
        it decides)."""
        if self.decides and exchange is not None and exchange.inherited_alerts:
            self.book.carry_on(exchange.inherited_alerts)
        elif self.store is not None and resume:
            self._resume(self.store)

    def _resume(self, store: BookStore) -> None:
        """Take over the book ``store`` kept from this server's last run, if any."""
        try:
            kept = store.load()
            lease = store.lease()
        except Exception as exc:
            if not unreadable(exc):
                raise
            if isinstance(exc, ValueError):  # damaged, not out of reach
                _set_aside(store, exc)
                return
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
        if lease is not None and not lease.released and lease.holder != self.holder:
            ago = time.time() - lease.saved_at
            if ago < LEASE_SECONDS:
                logger.warning(
                    "the alert book at %s was kept by %s until %.0f s ago, which did not let "
                    "go of it: that server was killed, or it still runs (the pod a rolling "
                    "update replaces, or another server named %r: servers that share a "
                    "registry need names of their own, MODELPILOT_SERVER_NAME). This one "
                    "takes the book over; the other, if it runs, stops keeping it and says so",
                    store.where,
                    lease.holder,
                    max(ago, 0.0),
                    self.book.server,
                )
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
        """Apply a round's verdicts (where this process decides), and publish the book
        (saved, changed or not, every ``RENEW_SECONDS``)."""
        if self.decides:
            with self._lock:
                self.book.update(conditions, now)
        kept_at = self._kept_at
        self._publish(renew=kept_at is not None and now - kept_at >= RENEW_SECONDS)
        if self.taken is not None and now - self._taken_said >= SHARED_NAME_SECONDS:
            self._taken_said = now
            logger.error(
                "two servers are named %r: %s took this one's alert book over %.0f s ago, "
                "and this one runs on. Each decides on its own traffic and notifies the "
                "webhook, under the same name; only the other keeps its alerts for its next "
                "start. Give each server a name of its own (MODELPILOT_SERVER_NAME), or run "
                "one replica of a named Deployment",
                self.book.server,
                self.taken.holder,
                now - self._taken_at,
            )

    def loss_conditions(self, now: float, dropped: int, unlogged: int) -> list[Condition]:
        """The ``monitoring_losing`` rule's verdict, from this process's counters (``dropped``,
        ``unlogged``: ``modelpilot_monitor_dropped_total``, ``..._unlogged_total``) and, with
        workers, the other workers' as their snapshots hold them; call it where this process
        decides, once an evaluation."""
        own = Lost(float(dropped), float(unlogged))
        if self.exchange is None:
            figures = {0: own}
        else:
            figures = workers_lost(self.exchange.index, own, self.exchange.peers())
        self.losses.record(now, figures)
        return loss_conditions(self.losses.window(now, LOSS_WINDOW_SECONDS), self.book.rules)

    def publish(self) -> None:
        """Write the book for the other workers, and for the worker that may replace this
        one (with workers, where this process decides); and keep it for the next start (where
        it is kept)."""
        self._publish()

    def _publish(self, renew: bool = False, release: bool = False) -> None:
        if not self.decides:
            return
        with self._lock:
            state = self.book.state()
            if self.exchange is not None:
                self.exchange.publish_alerts(state)
            if self.store is not None and (release or not self._closing):
                self._save(self.store, state, renew or release, release)

    def _save(self, store: BookStore, state: AlertState, renew: bool, release: bool) -> None:
        """Save ``state`` to ``store`` if it changed since last saved, but for the figures of
        its firing alerts, or to ``renew`` the lease of a book this process keeps (or to
        ``release`` it, at shutdown); unless another process saved the book since this one
        did, which then keeps it (``taken``). A store that fails is logged (once a minute)
        and tried again at the next change: alerts go on meanwhile.

        The figures (message, value) of a firing alert change with every evaluation: saved
        each time, a book with a full history (200 alerts: 54 kB, 0.5-4 ms to a file,
        13-15 ms to PostgreSQL on loopback) would be rewritten every 2 s. A server that
        takes the book over shows the figures last saved until its first evaluation."""
        if self.taken is not None:
            return
        decisions = encode(_without_figures(state))
        if decisions == self._saved_decisions and not (renew and self._kept_at is not None):
            return
        try:
            if self._kept_at is not None:
                # The first save takes the book over: the process that saved it before is
                # the one this one took it over from, or one that runs beside it, which
                # then finds it taken.
                lease = _lease(store)
                if lease is not None and lease.holder != self.holder:
                    self._taken_over(store, lease)
                    return
            store.save(encode(state, self.holder, released=release))
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
        self._kept_at = time.time()

    def _taken_over(self, store: BookStore, lease: Lease) -> None:
        """Stop keeping the book that ``lease``'s holder saved since this process did (under
        the lock): saving it on, each would overwrite the other's alerts."""
        self.taken = lease
        self._taken_at = self._taken_said = time.time()
        logger.warning(
            "the alert book at %s was saved by %s %.0f s ago, another server named %r, "
            "since this one last saved it: this one keeps it no longer, so that neither "
            "overwrites the other's alerts (at its next start, this server does not take over "
            "the alerts it decides on from now on: they stay with the receiver). The new pod "
            "of a rolling update takes its predecessor's book so; if this server runs on, two "
            "servers share the name: give each a name of its own (MODELPILOT_SERVER_NAME)",
            store.where,
            lease.holder,
            max(time.time() - lease.saved_at, 0.0),
            self.book.server,
        )

    def closing(self) -> None:
        """The process stops: the last evaluations leave the book's save to ``close``, which
        saves it in any case, so that a database that does not answer is waited for once,
        within the stop's budget for the alerts, rather than in the last evaluation too,
        which the inference log's last writes wait for (``monitor_stop``)."""
        self._closing = True

    def close(self) -> None:
        """Deliver what still waits for the webhook (briefly), then keep the book with what
        it could not deliver, which the next start sends, and let go of it."""
        self.book.close()
        self._publish(release=True)
        self._errors.flush()
        if self.store is not None:
            self.store.close()

    def state(self) -> AlertState:
        """The active alerts, their history and counts, as every worker answers them."""
        if self.exchange is None:
            with self._lock:
                return self.book.state()
        return self.exchange.alerts() or AlertState()


def _set_aside(store: BookStore, exc: ValueError) -> None:
    """Start afresh from a damaged book, kept aside rather than overwritten by the next save,
    and say the ids it still shows: those alerts stay open at the webhook's receiver (their
    resolution is never sent), which the operator closes by hand. It was overwritten, and
    the ids were lost for good."""
    try:
        text = store.raw()
        aside = store.set_aside(time.strftime("%Y%m%dT%H%M%S"))
    except Exception as again:
        if not unreadable(again):
            raise
        text, aside = None, f"nowhere ({first_line(again)}): it will be overwritten"
    alerts = open_alerts(text) if text else []
    logger.warning(
        "alerts start afresh: the alert book kept at %s cannot be read (%s); it is kept "
        "aside at %s. The alerts that fired before the restart are announced again under new "
        "ids; the old ids of those not resolved stay open at the webhook's receiver, to be "
        "closed by hand: %s",
        store.where,
        first_line(exc),
        aside or "the same place",
        ", ".join(alerts) or "no alert id could be read from it",
    )


def _lease(store: BookStore) -> Lease | None:
    """Who saved the book in ``store`` last; None for a book damaged since this process saved
    it, which it then saves over, as it did before books said who kept them."""
    try:
        return store.lease()
    except ValueError:
        return None


def _without_figures(state: AlertState) -> AlertState:
    """``state`` without what changes at every evaluation: the message and the value of its
    firing alerts."""
    return replace(state, active=tuple(replace(a, message="", value=0.0) for a in state.active))
