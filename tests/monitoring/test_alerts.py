"""Alerts fire once, update while they hold, resolve, and reach a real webhook."""

from __future__ import annotations

import socket
import time

import pytest

from modelpilot.config import Settings
from modelpilot.monitoring.alert_rules import model_conditions, service_conditions
from modelpilot.monitoring.alerts import (
    RULES,
    SEVERITY,
    AlertBook,
    AlertRules,
    AlertState,
    Condition,
)
from modelpilot.monitoring.drift import DriftReport, FeatureDrift
from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.performance import Labelled, PerformanceThresholds, PerformanceWindow
from modelpilot.monitoring.process import alert_rules
from modelpilot.monitoring.webhook import Webhook
from modelpilot.registry.store import Registry
from tests.monitoring.webhook_receiver import Receiver, receiving

AT_ONCE = AlertRules(keep_firing_seconds=0.0)
"""Alerts that resolve at the first evaluation that does not hold (the default waits a minute:
test_alert_persistence.py)."""


def drift(holds: bool, message: str = "2 of 4 features drifted") -> Condition:
    return Condition("data_drift", "iris:1", holds, "warning", message, 0.5)


def test_alert_lifecycle_goes_to_the_webhook(receiver: Receiver) -> None:
    book = AlertBook(f"http://127.0.0.1:{receiver.server_port}/hook", rules=AT_ONCE)
    assert book.update([drift(False)], now=1.0) == []
    fired = book.update([drift(True)], now=2.0)
    assert [a.rule for a in fired] == ["data_drift"] and fired[0].since == 2.0
    assert book.update([drift(True, "3 of 4 features drifted")], now=3.0) == []
    assert book.active[("data_drift", "iris:1")].message == "3 of 4 features drifted"
    resolved = book.update([drift(False)], now=4.0)
    assert resolved[0].resolved_at == 4.0 and book.active == {}
    assert book.fired_total == {("data_drift", "iris:1", "warning"): 1}
    book.close()  # delivers what waits
    states = [[a["state"] for a in body["alerts"]] for body in receiver.received]
    assert states == [["firing"], ["resolved"]]
    assert receiver.received[0]["alerts"][0]["message"] == "2 of 4 features drifted"
    assert receiver.received[0]["host"] == socket.gethostname()  # whose verdict it is


def test_a_book_carried_on_keeps_its_alerts_counts_and_undelivered_notifications(
    receiver: Receiver,
) -> None:
    """What a worker that decides on alerts leaves to the worker that replaces it: without
    it, the successor announced every active alert again as new, and never a resolve."""
    nowhere = socket.socket()
    nowhere.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    gone = AlertBook(f"http://127.0.0.1:{nowhere.getsockname()[1]}/hook")
    gone.update([drift(True)], now=2.0)
    state = gone.state()
    assert state.undelivered  # its receiver never took the firing
    assert gone.webhook is not None
    gone.webhook.close(timeout=0)
    nowhere.close()

    successor = AlertBook(f"http://127.0.0.1:{receiver.server_port}/hook", rules=AT_ONCE)
    successor.carry_on(state)
    assert successor.update([drift(True, "3 of 4 features drifted")], now=3.0) == []
    (resolved,) = successor.update([drift(False, "no drift")], now=4.0)
    assert (resolved.since, resolved.resolved_at) == (2.0, 4.0)
    assert resolved.message == "no drift"  # what resolved it, not what last fired it
    assert successor.fired_total == {("data_drift", "iris:1", "warning"): 1}
    assert [a.resolved_at for a in successor.history] == [None, 4.0]
    successor.close()
    states = [[a["state"] for a in body["alerts"]] for body in receiver.received]
    assert states == [["firing"], ["resolved"]]


def test_the_book_is_told_when_a_notification_is_delivered(receiver: Receiver) -> None:
    """Worker 0 wrote its book once a round: killed within that round of a delivery, it left
    the notification listed as undelivered, and its successor sent it again."""
    states: list[AlertState] = []
    book = AlertBook(
        f"http://127.0.0.1:{receiver.server_port}/hook",
        on_delivered=lambda: states.append(book.state()),
    )
    book.update([drift(True)], now=1.0)
    assert book.state().undelivered  # queued, or on its way
    deadline = time.monotonic() + 5
    while not states and time.monotonic() < deadline:
        time.sleep(0.01)
    assert states and states[-1].undelivered == ()  # delivered: nothing left to send again
    book.close()


def hook(receiver: Receiver, retry_seconds: tuple[float, ...] = (0.05, 0.05)) -> Webhook:
    return Webhook(f"http://127.0.0.1:{receiver.server_port}/hook", 2.0, retry_seconds)


def settled(webhook: Webhook, receiver: Receiver, delivered: int) -> None:
    deadline = time.monotonic() + 10
    while len(receiver.received) < delivered and time.monotonic() < deadline:
        time.sleep(0.01)
    webhook.close()


def test_a_slow_receiver_does_not_hold_up_the_alerts(receiver: Receiver) -> None:
    # The monitor updates alerts under the lock that the event loop reads reports under.
    receiver.delay = 1.0
    book = AlertBook(f"http://127.0.0.1:{receiver.server_port}/hook", rules=AT_ONCE)
    started = time.monotonic()
    book.update([drift(True)], now=1.0)
    book.update([drift(False)], now=2.0)
    assert time.monotonic() - started < 0.5
    assert receiver.received == []
    book.close()
    assert [body["alerts"][0]["state"] for body in receiver.received] == ["firing", "resolved"]


def test_a_failed_notification_is_tried_again_before_the_next(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 429]
    webhook = hook(receiver, (0.05, 0.05, 0.05))
    webhook.send({"n": 1})
    webhook.send({"n": 2})
    settled(webhook, receiver, 2)
    assert receiver.received == [{"n": 1}, {"n": 2}]  # in order: a resolve never comes first
    assert (webhook.failures, webhook.dropped) == (3, 0)


def test_a_notification_is_given_up_after_its_retries(receiver: Receiver) -> None:
    receiver.status = 500
    webhook = hook(receiver)
    webhook.send({"n": 1})
    deadline = time.monotonic() + 10
    while webhook.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (webhook.failures, webhook.dropped) == (3, 1)  # the first attempt and two retries
    receiver.status = 200
    webhook.send({"n": 2})  # the next one still goes
    settled(webhook, receiver, 1)
    assert receiver.received == [{"n": 2}]


def test_a_refused_notification_is_not_sent_again(receiver: Receiver) -> None:
    receiver.statuses = [400]
    webhook = hook(receiver)
    webhook.send({"n": 1})
    webhook.send({"n": 2})
    settled(webhook, receiver, 1)
    assert receiver.received == [{"n": 2}]
    assert (webhook.failures, webhook.dropped) == (1, 1)


def test_a_failing_webhook_is_counted_not_raised(receiver: Receiver) -> None:
    receiver.status = 500
    book = AlertBook(f"http://127.0.0.1:{receiver.server_port}/hook")
    book.update([drift(True)], now=1.0)
    assert len(book.active) == 1
    book.close()  # one more attempt, cut short: no retry waits at shutdown
    assert book.webhook_failures == 2 and book.webhook_dropped == 1


def test_what_is_not_delivered_by_shutdown_is_counted_and_said(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.delay = 2.0
    webhook = hook(receiver)
    for n in range(3):
        webhook.send({"n": n})
    time.sleep(0.2)  # the first is on its way
    webhook.close(timeout=0.3)
    assert webhook.dropped == 3  # the one being sent, and the two behind it
    assert "3 notification(s) not delivered before shutdown" in caplog.text


def test_a_receiver_that_is_down_is_tried_again(receiver: Receiver) -> None:
    port = receiver.server_port
    receiver.shutdown()
    receiver.server_close()
    webhook = Webhook(f"http://127.0.0.1:{port}/hook", 2.0, (0.3, 5.0))
    webhook.send({"n": 1})
    deadline = time.monotonic() + 0.25  # the first attempt, refused; the next after 0.3 s
    while webhook.failures < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert webhook.failures == 1
    with receiving(port) as again:
        settled(webhook, again, 1)
        assert again.received == [{"n": 1}] and webhook.dropped == 0


def test_error_rate_and_latency_rules_fire_from_service_history(labelled_iris: Registry) -> None:
    monitor = Monitor(
        labelled_iris, alert_rules=AlertRules(min_requests=20, keep_firing_seconds=0.0)
    )
    for i in range(100):
        # 10% failed by the server; 30% more were the clients' own errors, which do not count.
        status = "500" if i % 10 == 0 else "404" if i % 10 < 4 else "ok"
        monitor.history.request_finished("iris", "1", "rest", status, 0.9, None)
    monitor.flush()
    active = {a.rule: a for a in monitor.alerts.active.values()}
    assert set(active) == {"error_rate", "latency"}
    assert active["error_rate"].value == pytest.approx(0.1)
    assert "10.0% of 100 requests failed on the server (5xx)" in active["error_rate"].message
    assert active["latency"].value == pytest.approx(0.9)
    for _ in range(1000):
        monitor.history.request_finished("iris", "1", "rest", "ok", 0.001, None)
    monitor.flush()
    # 10 errors in 1,100 requests is under 5%. The window's p99 is still 0.9 s: 100 of its
    # 1,100 requests took that long, though the newest interval's p99 is 1 ms (the mean of
    # the intervals' p99s, weighted by requests, was 0.08 s and let it go).
    active = {a.rule: a for a in monitor.alerts.active.values()}
    assert set(active) == {"latency"} and active["latency"].value == pytest.approx(0.9)
    for _ in range(10_000):
        monitor.history.request_finished("iris", "1", "rest", "ok", 0.001, None)
    monitor.flush()
    # 100 slow requests of 11,100 are under 1%: the p99 is a fast one's, about 1 ms.
    assert monitor.alerts.active == {}
    assert [a.rule for a in monitor.alerts.history if a.resolved_at] == ["error_rate", "latency"]
    for _ in range(1000):  # a client asking for a model that does not exist: not an outage
        monitor.history.request_finished("(unknown)", "unknown", "rest", "404", 0.001, None)
    monitor.flush()
    assert monitor.alerts.active == {}
    monitor.stop()


def minute(requests: int, server_errors: int) -> ServicePoint:
    return ServicePoint(0.0, 60.0, requests, server_errors, 0.01, 0.01, 0.01, 0.0, 0, server_errors)


def test_the_error_rate_is_judged_from_the_configured_number_of_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5 server errors of 12 requests (42%) raised nothing, by a minimum of 20 requests that
    no setting changed and no page told of: MODELPILOT_ALERT_MIN_REQUESTS sets it now."""
    (judged,) = [
        c for c in service_conditions([minute(12, 5)], AlertRules()) if c.rule == "error_rate"
    ]
    assert not judged.holds
    assert "12 requests in the last 60 s, fewer than the 20 it is judged from" in judged.message
    monkeypatch.setenv("MODELPILOT_ALERT_MIN_REQUESTS", "10")
    rules = alert_rules(Settings())
    assert rules.min_requests == 10
    error_rate = {c.rule: c for c in service_conditions([minute(12, 5)], rules)}["error_rate"]
    assert error_rate.holds and error_rate.value == pytest.approx(5 / 12)
    assert "41.7% of 12 requests failed on the server (5xx)" in error_rate.message
    quiet = {c.rule: c for c in service_conditions([minute(9, 5)], rules)}["error_rate"]
    assert not quiet.holds  # under the minimum, whatever the share


def test_one_slow_request_to_an_idle_server_is_no_latency_alert() -> None:
    """A 0.7 s request alone in its minute was the minute's p99, and fired the latency alert
    (and its webhook), where the error rate waited for 20 requests."""
    slow = ServicePoint(0.0, 60.0, 1, 0, 0.7, 0.7, 0.7, 0.0, 0)
    (latency,) = [c for c in service_conditions([slow], AlertRules()) if c.rule == "latency"]
    assert not latency.holds and latency.value == pytest.approx(0.7)
    assert "fewer than the 20 it is judged from" in latency.message
    busy = ServicePoint(0.0, 60.0, 20, 0, 0.7, 0.7, 0.7, 0.0, 0)
    (latency,) = [c for c in service_conditions([busy], AlertRules()) if c.rule == "latency"]
    assert latency.holds and "p99 latency 700.0 ms" in latency.message


def test_a_resolved_concept_drift_is_announced_with_the_figures_that_resolve_it() -> None:
    """The resolved notification repeated the reason it had fired with ("accuracy 0 against
    0.9733 at registration"), while the model was back at 0.969."""
    window = PerformanceWindow(
        "classification",
        [0, 1],
        {"accuracy": 0.95},
        {"0": 50, "1": 50},
        max_rows=40,
        max_seconds=3600,
        thresholds=PerformanceThresholds(min_labels=30),
    )

    def report() -> ModelReport:
        return ModelReport("iris", "1", 0, 0, None, None, window.report(), [])

    book = AlertBook(rules=AT_ONCE)
    for i in range(40):  # every one wrong
        window.add(i % 2, 1 - i % 2, None, at=None)
    (fired,) = book.update(model_conditions([report()]), now=1.0)
    assert fired.rule == "concept_drift" and "accuracy 0 against 0.95" in fired.message
    for i in range(40):  # every one right
        window.add(i % 2, i % 2, None, at=None)
    (resolved,) = book.update(model_conditions([report()]), now=2.0)
    assert resolved.resolved_at == 2.0
    assert resolved.message.startswith("accuracy 1 against 0.95")
    assert resolved.message.endswith("over 40 labels")


def feature(name: str, drifted: bool) -> FeatureDrift:
    return FeatureDrift(
        name=name,
        kind="numeric",
        rows=500,
        method="ks",
        score=0.999 if drifted else 0.5,
        threshold=0.99875,
        drifted=drifted,
        reason="",
        psi=0.3,
        js_distance=0.1,
        kl_divergence=0.2,
        wasserstein=0.5,
        p_value=0.001 if drifted else 0.5,
        missing_share=0.0,
        reference_missing_share=0.0,
    )


def version_drifting(drifted: int, of: int = 4) -> ModelReport:
    features = tuple(feature(f"x{i}", i < drifted) for i in range(of))
    drift = DriftReport(500, features, drifted / of >= 0.5, drifted / of, "")
    return ModelReport("iris", "1", 500, 500, drift, None, None, [])


def test_each_rule_has_one_severity_and_data_drift_is_a_warning() -> None:
    """Data drift was critical when it was dataset drift and a warning before, while
    Prometheus's ModelPilotDataDrift (on dataset drift) was a warning. Drifted inputs only
    warn that the model may degrade; concept drift, seen in labels, is the critical one."""
    assert set(SEVERITY) == set(RULES)
    assert SEVERITY["data_drift"] == "warning" and SEVERITY["concept_drift"] == "critical"
    for drifted in (1, 3):  # some features, and dataset drift
        conditions = model_conditions([version_drifting(drifted)])
        assert [(c.rule, c.holds) for c in conditions] == [
            ("data_drift", True),
            ("concept_drift", False),
        ]
        assert all(c.severity == SEVERITY[c.rule] for c in conditions)
    conditions = service_conditions([minute(100, 50)], AlertRules())
    assert all(c.severity == SEVERITY[c.rule] for c in conditions)
    # An alert keeps the severity it fired with: one severity a rule keeps it true.
    book = AlertBook()
    book.update(model_conditions([version_drifting(1)]), now=1.0)
    book.update(model_conditions([version_drifting(3)]), now=2.0)
    alert = book.active[("data_drift", "iris:1")]
    assert alert.severity == "warning" and alert.value == 0.75


def test_label_shift_alone_is_concept_drift() -> None:
    window = PerformanceWindow(
        "classification",
        [0, 1],
        {},  # no reference metrics: only the labels' distribution can move
        {"0": 50, "1": 50},
        max_rows=1000,
        max_seconds=3600,
        thresholds=PerformanceThresholds(min_labels=30),
    )
    for _ in range(40):
        window.add(1, 1, None, at=None)
    report = window.report()
    assert report is not None and report.concept_drift and report.degraded == []
    assert report.label_shift is not None and report.label_shift > 0.5
    assert "label distribution moved" in report.reason


def test_labels_by_key_replace_and_leave_the_window_as_others_do() -> None:
    window = PerformanceWindow("classification", [0, 1], {}, None, 3, 60, PerformanceThresholds())
    for key in "abc":
        window.add(0, 0, None, at=100.0, key=key)
    window.add(1, 0, None, at=101.0, key="a")  # replaces a's label: still three rows
    assert [(r.key, r.truth) for r in window.rows(now=110.0)] == [("b", 0), ("c", 0), ("a", 1)]
    assert window.total == 3
    window.add(1, 1, None, at=102.0, key="d")  # the window is full: b leaves it
    assert [r.key for r in window.rows(now=110.0)] == ["c", "a", "d"]
    window.add(1, 1, None, at=103.0, key="b")  # b is no longer there: a label like any other
    assert [r.key for r in window.rows(now=110.0)] == ["a", "d", "b"]
    assert window.total == 5
    assert [r.key for r in window.rows(now=161.5)] == ["d", "b"]  # a is too old now
    window.add(0, 1, None, at=162.0, key="a")
    assert [r.key for r in window.rows(now=162.0)] == ["d", "b", "a"] and window.total == 6
    window.add(0, 1, None, at=162.0)  # no key: never replaces
    window.add(0, 1, None, at=162.0)
    assert len(window.rows(now=162.0)) == 3 and window.total == 8


def test_a_row_labelled_in_two_processes_counts_once_with_the_later_label() -> None:
    window = PerformanceWindow("classification", [0, 1], {}, None, 10, 60, PerformanceThresholds())
    window.add(1, 1, None, at=100.0, key=("r1", 0))
    window.add(0, 0, None, at=100.0, key=("r2", 0))
    window.add(0, 1, None, at=100.0)
    sibling = [  # what another worker was posted: r1 again (corrected) and r3
        Labelled(101.0, 0, 1, None, ("r1", 0)),
        Labelled(100.5, 1, 1, None, ("r3", 0)),
        Labelled(100.5, 0, 1, None),  # without a key: never replaces
    ]
    report = window.report(now=110.0, others=sibling)
    assert report is not None and report.labels == 5
    # r1 counts as wrong (its later label), r2 and r3 right, the two unkeyed rows wrong
    assert report.current["accuracy"] == pytest.approx(2 / 5)
    # the other worker sees the same
    other = PerformanceWindow("classification", [0, 1], {}, None, 10, 60, PerformanceThresholds())
    for row in sibling:
        other.add(row.truth, row.predicted, None, at=row.at, key=row.key)
    seen = other.report(now=110.0, others=window.rows(now=110.0))
    assert seen is not None and seen.labels == 5 and seen.current == report.current
