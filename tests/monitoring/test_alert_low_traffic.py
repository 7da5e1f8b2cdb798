"""A firing error-rate or latency alert holds while its window is too small to judge: too
few requests is not a healthy service, and must not be announced as one."""

from __future__ import annotations

import time

from modelpilot.monitoring.alert_rules import service_conditions
from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition
from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry

RULES = AlertRules(keep_firing_seconds=0.0)  # 5% of at least 20 requests; p99 500 ms; no wait


def minute(requests: int, server_errors: int = 0, p99: float = 0.01) -> list[ServicePoint]:
    return [ServicePoint(0.0, 60.0, requests, server_errors, p99, p99, p99, 0.0, 0, server_errors)]


def of(rule: str, window: list[ServicePoint]) -> Condition:
    return {c.rule: c for c in service_conditions(window, RULES)}[rule]


def test_a_firing_error_rate_holds_on_too_few_requests_and_resolves_on_enough() -> None:
    """A model failing every one of 19 requests a minute was announced "resolved", value 1.0,
    because 19 is under the 20 the rule judges from."""
    book = AlertBook(rules=RULES)
    (fired,) = book.update(service_conditions(minute(26, 26), RULES), now=1.0)
    assert fired.rule == "error_rate" and fired.value == 1.0
    for now, window in ((2.0, minute(19, 19)), (3.0, minute(0))):
        assert book.update([of("error_rate", window)], now=now) == []
        held = book.active[("error_rate", "")]
        assert held.since == 1.0 and held.resolved_at is None
        assert "too few to judge; without a verdict the alert holds" in held.message
    assert book.active[("error_rate", "")].message.startswith("0 requests in the last 60 s")
    book.update([of("error_rate", minute(19, 19))], now=4.0)
    assert "19 requests in the last 60 s, fewer than the 20 it is judged from (100.0% failed" in (
        book.active[("error_rate", "")].message
    )
    (resolved,) = book.update([of("error_rate", minute(40, 1))], now=5.0)  # 2.5%: judged
    assert resolved.resolved_at == 5.0 and resolved.value == 1 / 40
    assert "2.5% of 40 requests failed" in resolved.message
    assert book.active == {} and book.fired_total == {("error_rate", "", "critical"): 1}


def test_a_firing_latency_alert_holds_on_too_few_requests() -> None:
    book = AlertBook(rules=RULES)
    (fired,) = book.update([of("latency", minute(30, p99=0.7))], now=1.0)
    assert fired.rule == "latency"
    assert book.update([of("latency", minute(5, p99=0.001))], now=2.0) == []
    assert "(p99 1.0 ms): too few to judge" in book.active[("latency", "")].message
    (resolved,) = book.update([of("latency", minute(30, p99=0.001))], now=3.0)
    assert resolved.resolved_at == 3.0


def test_no_flapping_around_the_minimum() -> None:
    """About 20 requests a minute, 18% failing: fired, "resolved" at 17.6% errors (17
    requests), fired again 4 s later; each change a notification."""
    book = AlertBook(rules=RULES)
    changes = []
    for now, requests in enumerate((22, 17, 21, 19, 20, 18, 23, 12)):
        failed = round(requests * 0.18)
        changes += book.update(service_conditions(minute(requests, failed), RULES), now=now)
    assert [(a.rule, a.resolved_at) for a in changes] == [("error_rate", None)]


def test_an_alert_never_fires_on_too_few_requests() -> None:
    book = AlertBook(rules=RULES)
    assert book.update(service_conditions(minute(19, 19, p99=5.0), RULES), now=1.0) == []
    assert book.active == {}


def test_the_monitor_keeps_the_alert_while_traffic_is_too_low(labelled_iris: Registry) -> None:
    """Through the monitor, on its service history's window (one second long here)."""
    rules = AlertRules(min_requests=20, window_seconds=1.0, keep_firing_seconds=0.0)
    monitor = Monitor(labelled_iris, alert_rules=rules)
    try:
        for _ in range(30):
            monitor.history.request_finished("iris", "1", "rest", "500", 0.001, None)
        monitor.flush()
        assert set(monitor.alerts.active) == {("error_rate", "")}
        time.sleep(1.1)  # those age out of the window
        for _ in range(5):
            monitor.history.request_finished("iris", "1", "rest", "500", 0.001, None)
        monitor.flush()
        assert set(monitor.alerts.active) == {("error_rate", "")}
        assert [a.resolved_at for a in monitor.alerts.history] == [None]
        time.sleep(1.1)
        for _ in range(25):
            monitor.history.request_finished("iris", "1", "rest", "ok", 0.001, None)
        monitor.flush()
        assert monitor.alerts.active == {}
        assert monitor.alerts.history[-1].rule == "error_rate"
        assert monitor.alerts.history[-1].value == 0.0
    finally:
        monitor.stop()
