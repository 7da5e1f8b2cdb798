"""Alerts: conditions checked in the server, kept while they hold, announced when they change.

The monitor evaluates the rules (``alert_rules``) every few seconds. A rule that holds becomes
an active alert (exposed as ``modelpilot_alert_active`` and on ``/api/alerts``); when it stops
holding the alert resolves. The drift rules fire only once they have held for a while
(``AlertRules.for_seconds``, Prometheus's ``for``; ``WAITS_TO_FIRE``), and so does monitoring
that loses requests (``AlertRules.loss_for_seconds``); every rule judged on a sample resolves
only once it has not held for a while (``keep_firing_seconds``, Prometheus's
``keep_firing_for``; ``WAITS_TO_RESOLVE``). A rule that cannot judge (too few requests, labels
or rows) fires and resolves nothing: an alert that fires stays firing, at the figure it was
last judged at, and a wait to fire starts over. Both changes
go to the optional webhook as JSON (``Alert.to_dict``), queued from the monitor's thread.
"""

from __future__ import annotations

import hashlib
import math
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from modelpilot.monitoring.webhook import TIMEOUT_SECONDS, Webhook

RULES = (
    "data_drift",
    "concept_drift",
    "error_rate",
    "latency",
    "rollout_stalled",
    "monitoring_losing",
)
SEVERITY = {
    "data_drift": "warning",
    "concept_drift": "critical",
    "error_rate": "critical",
    "latency": "warning",
    "rollout_stalled": "critical",
    "monitoring_losing": "warning",
}
"""Each rule's one severity, whatever its figures; deploy/monitoring's rules use the same.
Data drift, of one feature or most, warns that the model may degrade; concept drift is the
degradation, seen in labels. Monitoring that loses requests warns: serving goes on, and what
is lost is the view of the models. (A firing alert keeps the severity it fired with, so a
severity that rose with the figures told a drift's history, not its state.)"""


WAITS_TO_FIRE = frozenset({"data_drift", "concept_drift"})
"""The rules that ``AlertRules.for_seconds`` applies to. Each evaluation judges them on a
window that is partly new, and so gives a test a fresh chance to flag by chance. The service
rules judge the whole last minute already (a burst must be 5% of a minute's requests to fire
the error rate), and a wait would hold back the page of an outage; a stalled rollout is a
fact, not a sample, and waits ``MODELPILOT_ROLLOUT_STALL_SECONDS`` of its own; monitoring
that loses requests waits ``AlertRules.loss_for_seconds`` of its own (``wait_to_fire``)."""

WAITS_TO_RESOLVE = WAITS_TO_FIRE | {"error_rate", "latency"}
"""The rules that ``AlertRules.keep_firing_seconds`` applies to: those judged on a sample that
moves between evaluations, which crosses a threshold back and forth while one incident lasts.
A steady shift that 84% of 200-row drift windows showed fired and resolved its alert ten times
in two minutes; one burst of 30 failures among steady traffic fired and resolved the error
rate three times in 40 s, as the minute's requests slid past a fixed number of failures (and
evaluations follow label posts too, so two changes came 0.15 s apart). Each change is a
webhook notification."""


HOST = socket.gethostname()
"""Which machine a webhook notification comes from (a pod's name, under Kubernetes): several
servers tell one receiver of their own verdicts, which may differ. (``server`` in the payload
adds the HTTP port: two servers of one machine sent the same ``host``.)"""


def alert_id(server: str, rule: str, model: str, since: float) -> str:
    """The id of the alert of ``rule`` for ``model`` that ``server`` fired at ``since``: the
    same in its firing, its resolution and each retry of them, and no other's.

    Given once, at firing, and kept with the alert (in the alert book too): derived from the
    machine's name at every notification, it changed when a named server came back on a new
    pod (a Kubernetes Deployment's), and the resolution carried an id its receiver never saw
    fire. Derived from the server's name, not the machine's, two servers of one machine do
    not rely on ``since`` alone to tell their alerts apart."""
    named = "\0".join((server, rule, model, repr(since)))
    return hashlib.sha256(named.encode()).hexdigest()[:16]


RESTORED_UNJUDGED_SECONDS = 600.0
"""How long an alert taken over from before a restart (``AlertBook.resume``) holds while its
rule cannot judge it: then it resolves, saying that it could not be judged since the restart.

Too few to judge is not healthy, so the alert holds meanwhile, as it would have without the
restart; but what judged it may not come back: an error rate or a latency judged on the last
minute's requests, in memory, is judged again only once 20 requests came
(``MODELPILOT_ALERT_MIN_REQUESTS``), and a version no longer served has no report to judge its
drift. Ten minutes are many times what a server takes to put its windows back from the
inference log (seconds; about a minute for a long history of labels) and for a load balancer
to send traffic to it again, and bound the time a receiver keeps an alert nothing can judge."""


_HOLDS = "; without a verdict the alert holds, at the value last judged"
"""What a firing alert's message adds to why its rule could not judge: the rule says why
(for any alert, firing or not); only the book knows what that does to this one. A resolution
for want of a verdict (``_unjudged_since_restart``) says otherwise, and drops it."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds of the service rules (drift rules take theirs from the drift settings)."""

    error_rate: float = 0.05
    """Share of requests the server failed (5xx) over ``window_seconds`` that alerts; client
    errors (4xx) do not count: a client sending bad input is not an outage."""
    min_requests: int = 20
    """Fewer requests than this in the window: the error rate and the latency are not judged,
    so that a few failures, or one slow request, among a handful raise no alert
    (``MODELPILOT_ALERT_MIN_REQUESTS``); nor do they resolve one that fires, since too few
    to judge is not healthy (a model failing each of 19 requests a minute "resolved")."""
    model_min_requests: int = 5
    """Fewer requests of a model version than this in the window: its own error rate (the
    ``error_rate`` rule of ``NAME:VERSION``, ``version_errors``) is not judged
    (``MODELPILOT_ALERT_MODEL_MIN_REQUESTS``). Low, as each version's rule holds only on
    evidence (``version_errors.EVIDENCE``): 2 failures of 5 requests are; one failure of an
    idle model is not."""
    latency_p99_seconds: float = 0.5
    """p99 latency over ``window_seconds`` above which the latency rule fires."""
    window_seconds: float = 60.0
    for_seconds: float = 0.0
    """How long a drift rule (``WAITS_TO_FIRE``) must hold, evaluation after evaluation,
    before its alert fires (``MODELPILOT_ALERT_FOR_SECONDS``); pending meanwhile, which is
    not sent (it is shown: ``pending`` on ``/api/alerts``, ``modelpilot_alert_pending``). An
    evaluation where it does not hold starts the wait over, and so does one that cannot judge
    it (too few rows or labels; see ``AlertBook.update``)."""
    keep_firing_seconds: float = 60.0
    """How long the firing alert of a drift, error-rate or latency rule (``WAITS_TO_RESOLVE``)
    must not hold before it resolves (``MODELPILOT_ALERT_KEEP_FIRING_SECONDS``): if it holds
    again before, it is the same alert, announced neither again nor resolved."""
    loss_for_seconds: float = 300.0
    """How long monitoring_losing must hold, evaluation after evaluation, before its alert
    fires (``MODELPILOT_ALERT_MONITORING_LOSS_FOR_SECONDS``): the rule holds while requests
    were lost within the last ``alert_rules.LOSS_WINDOW_SECONDS`` (two minutes), so that one
    monitoring process replaced, which drops the requests of a moment, holds it for two
    minutes and fires nothing, while a loss that goes on fires (deploy/monitoring's
    ``ModelPilotMonitoringLosing``: ``rate(...[2m]) > 0`` ``for: 5m``)."""

    def wait_to_fire(self, rule: str) -> float:
        """How long ``rule`` must hold before its alert fires (0: at once)."""
        if rule in WAITS_TO_FIRE:
            return self.for_seconds
        if rule == "monitoring_losing":
            return self.loss_for_seconds
        return 0.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One occurrence of a rule holding for a model, from when it fired (``since``) to when
    it resolved, as ``/api/alerts`` shows it and the webhook is told (``to_dict``)."""

    rule: str
    model: str
    """``NAME:VERSION``, or ``""`` for the service-wide rules (error_rate, latency,
    monitoring_losing); the error rate is judged of each version too (``version_errors``),
    under its label."""
    severity: str
    message: str
    value: float
    """The rule's figure, in the rule's unit: data_drift, the share of features drifted;
    concept_drift, the number of quality metrics that fell; error_rate, the share of
    requests failed (5xx); latency, the p99 in seconds; rollout_stalled, 1 (0 resolved);
    monitoring_losing, the requests lost (unmonitored and unlogged) a minute over the last
    two minutes. A firing alert whose rule cannot judge keeps the figure it was last judged
    at."""
    since: float
    resolved_at: float | None = None
    id: str = ""
    """The same in the firing and the resolution of this occurrence, in each retry of them
    and after a restart, and no other's: a receiver that got a notification twice (it
    answered after the timeout, and was sent it again) can tell by ``(id, state)``. Given at
    firing (``alert_id``); one made without (read from a book kept before ids were kept in
    it) gets the id it was sent with then, derived from this machine's name."""
    drifted: tuple[str, ...] = ()
    """data_drift: the features drifted at the verdict last judged, which the version's
    report and gauges hold with the alert while its window cannot judge (``drift_results.
    holding``); kept in the alert book, so that they hold over a restart too. Not sent: the
    message names them."""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", alert_id(HOST, self.rule, self.model, self.since))

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.model)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "model": self.model,
            "severity": self.severity,
            "message": self.message,
            # JSON has no NaN (httpx refuses to send one): no figure is null.
            "value": self.value if math.isfinite(self.value) else None,
            "since": self.since,
            "resolved_at": self.resolved_at,
            "state": "resolved" if self.resolved_at else "firing",
        }


@dataclass(frozen=True, slots=True)
class Condition:
    """One rule's verdict for one model (``model`` is ``""`` for service-wide rules)."""

    rule: str
    model: str
    holds: bool
    severity: str
    message: str
    value: float
    judged: bool = True
    """False where the rule had too little to judge from: then ``holds`` says nothing, and
    an alert neither fires nor resolves. ``message`` then says why, with the figures it was
    not judged on, and ``value`` is not the rule's figure (a share of 0 of no rows)."""
    drifted: tuple[str, ...] = ()
    """data_drift: the features drifted (``Alert.drifted``)."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """What an alert book holds, as the worker that decides on alerts publishes it (``serve
    --workers``): every worker answers from it, and the worker that replaces it carries on
    from it."""

    active: tuple[Alert, ...] = ()
    history: tuple[Alert, ...] = ()
    fired_total: dict[tuple[str, str, str], int] = field(default_factory=dict)
    undelivered: tuple[dict[str, Any], ...] = ()
    """Webhook notifications not yet delivered."""
    pending: dict[tuple[str, str], float] = field(default_factory=dict)
    """Since when each model rule that holds, but has not held ``for_seconds``, has held."""
    clearing: dict[tuple[str, str], float] = field(default_factory=dict)
    """Since when each firing alert that has not resolved yet has not held."""
    unjudged: dict[tuple[str, str], float] = field(default_factory=dict)
    """Since when each alert taken over at a restart has waited for a verdict
    (``AlertBook.unjudged``)."""

    def waiting(self, rules: AlertRules) -> list[dict[str, Any]]:
        """The rules that hold but whose alerts do not fire yet, as ``/api/alerts`` shows
        them (Prometheus' pending alerts): each with when it started holding and when it
        fires if it goes on holding (by ``rules``' waits)."""
        return [
            {
                "rule": rule,
                "model": model,
                "severity": SEVERITY[rule],
                "since": since,
                "fires_at": since + rules.wait_to_fire(rule),
                "state": "pending",
            }
            for (rule, model), since in sorted(self.pending.items(), key=lambda kv: kv[1])
        ]


class AlertBook:
    """Active alerts and the recent history of firings and resolutions."""

    def __init__(
        self,
        webhook_url: str | None = None,
        history: int = 200,
        on_delivered: Callable[[], None] | None = None,
        rules: AlertRules | None = None,
        server: str | None = None,
        webhook_timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        """``on_delivered`` is called (from the webhook's thread) whenever a notification is
        delivered or given up; ``rules`` give how long the model rules must hold, or not
        hold, before their alerts change; ``server`` names this server to the webhook, and
        in its alerts' ids (default: the machine's name); ``webhook_timeout`` is how long
        each attempt waits for the receiver's answer
        (``MODELPILOT_ALERT_WEBHOOK_TIMEOUT_SECONDS``)."""
        self.webhook_url = webhook_url
        self.rules = rules or AlertRules()
        self.active: dict[tuple[str, str], Alert] = {}
        self.pending: dict[tuple[str, str], float] = {}
        """Since when each rule that holds, but whose alert does not fire yet, has held."""
        self.clearing: dict[tuple[str, str], float] = {}
        """Since when each firing alert's rule has not held, while its alert keeps firing."""
        self.history: deque[Alert] = deque(maxlen=history)
        self.fired_total: dict[tuple[str, str, str], int] = {}
        self.server = server or HOST
        """Which server this is, in the webhook's payload (``alert_book_store.server_name``)."""
        self.unjudged: dict[tuple[str, str], float] = {}
        """The alerts taken over from before a restart (``resume``) that no evaluation has
        judged since, with when it was taken over: each resolves once it has waited
        ``RESTORED_UNJUDGED_SECONDS`` unjudged."""
        self.webhook = (
            Webhook(webhook_url, webhook_timeout, on_done=on_delivered) if webhook_url else None
        )

    def update(self, conditions: Iterable[Condition], now: float | None = None) -> list[Alert]:
        """Apply this round's verdicts; returns the alerts that fired or resolved."""
        now = time.time() if now is None else now
        changes: list[Alert] = []
        for condition in conditions:
            key = (condition.rule, condition.model)
            current = self.active.get(key)
            if condition.judged:
                self.unjudged.pop(key, None)
            if not condition.judged:
                # Too few to judge is not healthy: a firing alert holds, its message saying
                # why, until a window that can be judged resolves it. Its value stays the
                # figure last judged: the unjudged one is no figure (a firing drift alert
                # showed 0, no feature drifted, once its window had emptied).
                # Nor did the rule hold: a wait to fire starts over, as Prometheus drops a
                # pending alert whose expression returns nothing. (Kept, it stayed pending
                # past its ``fires_at`` through a quiet hour, and two chance flags an hour
                # apart fired it; paused, they would add up to the wait as well.)
                self.pending.pop(key, None)
                if current is not None:
                    self.active[key] = replace(current, message=condition.message + _HOLDS)
            elif condition.holds:
                fired = self._held(condition, current, now)
                if fired is not None:
                    changes.append(fired)
            else:
                resolved = self._not_held(condition, current, now)
                if resolved is not None:
                    changes.append(resolved)
        changes += self._unjudged_since_restart(now)
        self.history.extend(changes)
        if changes and self.webhook is not None:
            self.webhook.send(
                {
                    "source": "modelpilot",
                    "host": HOST,
                    "server": self.server,
                    "alerts": [a.to_dict() for a in changes],
                }
            )
        return changes

    def _unjudged_since_restart(self, now: float) -> list[Alert]:
        """The alerts taken over at a restart that no evaluation could judge in
        ``RESTORED_UNJUDGED_SECONDS``, resolved (with the figures they last had, without
        saying that the alert holds)."""
        resolved = []
        for key, taken_at in list(self.unjudged.items()):
            current = self.active.get(key)
            if current is None:
                del self.unjudged[key]
            elif now - taken_at >= RESTORED_UNJUDGED_SECONDS:
                del self.unjudged[key], self.active[key]
                self.clearing.pop(key, None)
                message = (
                    f"{current.message.removesuffix(_HOLDS)}; could not be judged since the "
                    "server restarted at "
                    f"{_clock(taken_at)}: resolved after {RESTORED_UNJUDGED_SECONDS:.0f} s "
                    "without a verdict"
                )
                resolved.append(replace(current, message=message, resolved_at=now))
        return resolved

    def _held(self, condition: Condition, current: Alert | None, now: float) -> Alert | None:
        """A rule that holds: its alert fires once the rule has held ``for_seconds``.
        Returns the alert if it fired now."""
        key = (condition.rule, condition.model)
        self.clearing.pop(key, None)
        if current is not None:
            self.active[key] = replace(
                current,
                message=condition.message,
                value=condition.value,
                drifted=condition.drifted,
            )
            return None
        held_since = self.pending.setdefault(key, now)
        if now - held_since < self.rules.wait_to_fire(condition.rule):
            return None
        del self.pending[key]
        alert = Alert(
            condition.rule,
            condition.model,
            condition.severity,
            condition.message,
            condition.value,
            now,
            id=alert_id(self.server, condition.rule, condition.model, now),
            drifted=condition.drifted,
        )
        self.active[key] = alert
        counter = (condition.rule, condition.model, condition.severity)
        self.fired_total[counter] = self.fired_total.get(counter, 0) + 1
        return alert

    def _not_held(self, condition: Condition, current: Alert | None, now: float) -> Alert | None:
        """A rule that does not hold: its firing alert resolves once the rule has not held
        for ``keep_firing_seconds``. Returns the alert if it resolved now."""
        key = (condition.rule, condition.model)
        self.pending.pop(key, None)
        if current is None:
            return None
        keep = self.rules.keep_firing_seconds if condition.rule in WAITS_TO_RESOLVE else 0.0
        cleared_since = self.clearing.setdefault(key, now)
        if now - cleared_since < keep:
            self.active[key] = replace(
                current,
                message=f"{condition.message}; has not held since {_clock(cleared_since)}, "
                f"resolves at {_clock(cleared_since + keep)} unless it holds again",
                value=condition.value,
                drifted=condition.drifted,
            )
            return None
        del self.active[key], self.clearing[key]
        # Resolved with the figures that resolve it, not the last ones that fired it.
        message = condition.message or current.message
        if keep:
            message += f"; has not held since {_clock(cleared_since)}"
        return replace(
            current,
            message=message,
            value=condition.value,
            resolved_at=now,
            drifted=condition.drifted,
        )

    def state(self) -> AlertState:
        undelivered = self.webhook.undelivered() if self.webhook is not None else []
        return AlertState(
            tuple(self.active.values()),
            tuple(self.history),
            dict(self.fired_total),
            tuple(undelivered),
            dict(self.pending),
            dict(self.clearing),
            dict(self.unjudged),
        )

    def carry_on(self, state: AlertState) -> None:
        """Take over the book of the worker this one replaces: its alerts stay active (not
        announced again), those pending or not holding go on waiting from when they started,
        its counts go on, and what its webhook had not delivered is sent."""
        self.active = {alert.key: alert for alert in state.active}
        self.pending = dict(state.pending)
        self.clearing = dict(state.clearing)
        self.unjudged = dict(state.unjudged)
        self.history.extend(state.history)
        for key, count in state.fired_total.items():
            self.fired_total[key] = self.fired_total.get(key, 0) + count
        if self.webhook is not None:
            for payload in state.undelivered:
                self.webhook.send(payload)

    def resume(self, state: AlertState, now: float | None = None) -> None:
        """Take over the book this server kept before it restarted (``alert_book_store``):
        its alerts stay active with their ids and ``since`` (not announced again), those
        pending or not holding wait on from when they started, its history is shown, and what
        its webhook had not delivered is sent. Its counts are not: Prometheus counters start
        from zero with a process. An alert taken over that its rule cannot judge holds, for
        up to ``RESTORED_UNJUDGED_SECONDS``."""
        now = time.time() if now is None else now
        self.carry_on(replace(state, fired_total={}))
        self.unjudged = {key: now for key in self.active}

    @property
    def webhook_failures(self) -> int:
        """Attempts at notifying the webhook that it did not accept."""
        return 0 if self.webhook is None else self.webhook.failures

    @property
    def webhook_dropped(self) -> int:
        """Notifications the webhook never took (refused, or given up after every retry)."""
        return 0 if self.webhook is None else self.webhook.dropped

    def close(self) -> None:
        """Deliver what still waits for the webhook (briefly), then stop its thread."""
        if self.webhook is not None:
            self.webhook.close()


def _clock(at: float) -> str:
    """A Unix time in an alert's message: in UTC, which servers in several zones agree on."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
