"""Alerts: conditions checked in the server, kept while they hold, announced when they change.

Rules are evaluated by the monitor every few seconds. A rule that holds becomes an active alert
(exposed as ``modelpilot_alert_active`` and on ``/api/alerts``); when it stops holding the alert
resolves. Both changes go to the optional webhook as JSON, from the monitor's thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import httpx

logger = logging.getLogger(__name__)

RULES = ("data_drift", "concept_drift", "error_rate", "latency", "rollout_stalled")


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds of the service rules (drift rules take theirs from the drift settings)."""

    error_rate: float = 0.05
    """Share of requests the server failed (5xx) over ``window_seconds`` that alerts; client
    errors (4xx) do not count: a client sending bad input is not an outage."""
    min_requests: int = 20
    """Fewer requests than this in the window: the error rate is not judged."""
    latency_p99_seconds: float = 0.5
    """p99 latency over ``window_seconds`` above which the latency rule fires."""
    window_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    model: str
    severity: str
    message: str
    value: float
    since: float
    resolved_at: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.model)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "model": self.model,
            "severity": self.severity,
            "message": self.message,
            "value": self.value,
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


class AlertBook:
    """Active alerts and the recent history of firings and resolutions."""

    def __init__(self, webhook_url: str | None = None, history: int = 200) -> None:
        self.webhook_url = webhook_url
        self.active: dict[tuple[str, str], Alert] = {}
        self.history: deque[Alert] = deque(maxlen=history)
        self.fired_total: dict[tuple[str, str, str], int] = {}
        self.webhook_failures = 0
        self._client: httpx.Client | None = None

    def update(self, conditions: Iterable[Condition], now: float | None = None) -> list[Alert]:
        """Apply this round's verdicts; returns the alerts that fired or resolved."""
        now = time.time() if now is None else now
        changes: list[Alert] = []
        for condition in conditions:
            key = (condition.rule, condition.model)
            current = self.active.get(key)
            if condition.holds and current is None:
                alert = Alert(
                    condition.rule,
                    condition.model,
                    condition.severity,
                    condition.message,
                    condition.value,
                    now,
                )
                self.active[key] = alert
                counter = (condition.rule, condition.model, condition.severity)
                self.fired_total[counter] = self.fired_total.get(counter, 0) + 1
                changes.append(alert)
            elif condition.holds and current is not None:
                self.active[key] = replace(
                    current, message=condition.message, value=condition.value
                )
            elif not condition.holds and current is not None:
                del self.active[key]
                changes.append(replace(current, resolved_at=now))
        self.history.extend(changes)
        if changes and self.webhook_url:
            self._notify(changes)
        return changes

    def _notify(self, changes: list[Alert]) -> None:
        assert self.webhook_url is not None
        if self._client is None:
            self._client = httpx.Client(timeout=5.0)
        payload = {"source": "modelpilot", "alerts": [a.to_dict() for a in changes]}
        try:
            response = self._client.post(self.webhook_url, json=payload)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.webhook_failures += 1
            logger.warning("alert webhook %s failed: %s", self.webhook_url, exc)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
