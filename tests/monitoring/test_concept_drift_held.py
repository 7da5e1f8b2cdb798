"""Concept drift over a quality window too small to judge (its labels aged out, too few came
since, a restart) holds, in the report and in ``modelpilot_concept_drift`` as in the alert:
the gauge read 0 and the report "concept_drift": false while the alert held, and the shipped
Prometheus rule on the gauge resolved whenever labels came late."""

from __future__ import annotations

import asyncio
import dataclasses

import pandas as pd
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.alert_rules import drift_held, model_conditions
from modelpilot.monitoring.alerts import Alert, AlertBook, AlertRules, AlertState, Condition
from modelpilot.monitoring.model_metrics import ModelCollector
from modelpilot.monitoring.model_monitor import ModelReport, MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.performance import (
    PerformanceReport,
    PerformanceThresholds,
    PerformanceWindow,
)
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, reference_traffic

AT_ONCE = AlertRules(keep_firing_seconds=0.0)


def gauge(monitor: Monitor) -> float | None:
    """iris:1's ``modelpilot_concept_drift``, as /metrics exports it."""
    registry = CollectorRegistry()
    registry.register(ModelCollector(monitor))
    labels = {"model": "iris", "version": "1"}
    return registry.get_sample_value("modelpilot_concept_drift", labels)


async def test_a_drift_whose_labels_aged_out_holds_in_the_report_the_gauge_and_the_alert(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    settings = {
        "performance_min_labels": 20,
        "performance_window_seconds": 1.0,
        "alert_keep_firing_seconds": 0.0,
    }
    async with monitored(labelled_iris, **settings) as served:
        ids = []
        for row in reference_traffic(iris_frame, 30, seed=3):
            reply = await served.client.post("/predict/iris", json={"data": row.tolist()})
            ids.append((reply.json()["id"], reply.json()["predictions"][0]))
        wrong = [{"request_id": i, "label": (p + 1) % 3} for i, p in ids]
        reply = await served.client.post("/api/feedback/iris", json={"labels": wrong})
        assert reply.json()["accepted"] == 30
        report = (await served.client.get("/api/monitoring/iris")).json()
        assert report["concept_drift"] is True
        why = report["performance"]["reason"]
        assert why.startswith("accuracy 0 against ")
        assert gauge(served.monitor) == 1.0

        await asyncio.sleep(1.2)  # every label ages out of the quality window
        served.monitor.flush()
        report = (await served.client.get("/api/monitoring/iris")).json()
        performance = report["performance"]
        assert report["concept_drift"] is True, report
        assert gauge(served.monitor) == 1.0
        assert performance["judged"] is False and performance["labels"] == 0
        assert performance["reason"].startswith("concept drift found at ")
        assert performance["reason"].endswith(
            " holds until the window can judge again (no labels in the window): " + why
        )
        assert gauge(served.monitor) == 1.0
        (alert,) = (await served.client.get("/api/alerts")).json()["active"]
        assert (alert["rule"], alert["model"]) == ("concept_drift", "iris:1")
        assert alert["message"] == (
            performance["reason"] + "; without a verdict the alert holds, at the value last judged"
        )

        # Once the alert resolves (its version no longer served, say), nothing holds.
        served.monitor.alerts.update(model_conditions([served.monitor.report("iris")], 20, {}))
        assert served.monitor.alert_state().active == ()
        served.monitor.flush()
        assert (await served.client.get("/api/monitoring/iris")).json()["concept_drift"] is False
        assert gauge(served.monitor) == 0.0


def test_after_a_restart_the_drift_its_alert_held_holds(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    """A server restarted after its labels aged out takes its firing alert over (for up to
    ten minutes unjudged): its report and gauge hold it too, not "no concept drift"."""
    monitor = Monitor(labelled_iris, MonitorConfig(), AT_ONCE)
    try:
        said = "accuracy 0.45 against 0.96 at registration (bootstrap p-value 1e-10)"
        fired = Alert("concept_drift", "iris:1", "critical", said, 3.0, since=1000.0)
        monitor.alerts.resume(AlertState(active=(fired,)))
        rows = reference_traffic(iris_frame, 10, seed=1)
        version = labelled_iris.get_version("iris", 1)
        outputs = {"predict": rows[:, 0].astype("int64") % 3}
        monitor.predicted(version, ["r0"], [10], {"input-0": rows}, outputs)
        monitor.flush()
        performance = monitor.report("iris").performance
        assert performance is not None and performance.concept_drift is True
        assert performance.reason == (
            "concept drift holds until the window can judge again (no labels in the window), "
            "as its alert does"
        )
        assert gauge(monitor) == 1.0
    finally:
        monitor.stop()


def test_a_window_too_small_to_judge_reports_the_drift_that_holds() -> None:
    window = PerformanceWindow(
        "classification",
        [0, 1],
        {"accuracy": 0.95},
        {"0": 50, "1": 50},
        max_rows=100,
        max_seconds=3600,
        thresholds=PerformanceThresholds(min_labels=30),
    )
    # Nothing judged yet (a restart, whose labels had aged out): the alert's drift holds.
    held = window.report(now=1000.0, held=True)
    assert held is not None and held.concept_drift is True and not held.judged
    assert held.reason == (
        "concept drift holds until the window can judge again (no labels in the window), "
        "as its alert does"
    )
    assert window.report(now=1000.0) is None  # nothing holds: no report, as before
    for i in range(40):
        window.add(i % 2, 1 - i % 2, None, at=1000.0)
    judged = window.report(now=1000.0, held=False)
    assert judged is not None and judged.concept_drift is True and judged.judged
    for i in range(10):
        window.add(i % 2, i % 2, None, at=5000.0)  # the 40 have aged out; 10 right ones came
    held = window.report(now=5000.0, held=True)
    assert held is not None and held.concept_drift is True and held.labels == 10
    assert held.unjudged == "10 labels in the window, fewer than the 30 judged from"
    assert held.reason.startswith("concept drift found at 1970-01-01 00:16:40 UTC holds")
    assert held.reason.endswith(judged.reason)
    # A verdict judged on enough labels is the window's own, held or not.
    for i in range(30):
        window.add(i % 2, i % 2, None, at=5000.0)
    healthy = window.report(now=5000.0, held=True)
    assert healthy is not None and healthy.judged and healthy.concept_drift is False


def test_what_holds_is_what_the_alert_book_holds() -> None:
    book = AlertBook(rules=AlertRules(for_seconds=60.0, keep_firing_seconds=60.0))
    holds = Condition("concept_drift", "a:1", True, "critical", "accuracy fell", 1.0)
    book.update([holds, dataclasses.replace(holds, model="b:1")], now=0.0)
    # Pending is not held: a window that cannot judge starts its wait over (the report said
    # concept drift where the book, an evaluation later, had none).
    assert drift_held(book.state()) == {}
    book.update([dataclasses.replace(holds, model="b:1")], now=60.0)  # b fires
    assert list(drift_held(book.state())) == [("concept_drift", "b:1")]
    stops = dataclasses.replace(holds, holds=False, model="b:1")
    book.update([stops, dataclasses.replace(holds, holds=False)], now=61.0)
    # b's alert still fires (for a minute) but its rule no longer holds: nor does its drift.
    assert [a.model for a in book.state().active] == ["b:1"]
    assert drift_held(book.state()) == {}


async def test_a_restarted_server_reports_the_drift_it_took_over_before_any_request(
    labelled_iris: Registry,
) -> None:
    """Restarted after its labels aged out, with no traffic since: the report and the gauge
    hold the drift from the first evaluation (they were missing until the model's next
    request, a 404 and no series beside a firing alert, so that the Prometheus rule on the
    gauge resolved at every restart)."""
    async with monitored(labelled_iris, alert_keep_firing_seconds=0.0) as served:
        said = "accuracy 0.45 against 0.96 at registration (bootstrap p-value 1e-10)"
        fired = Alert("concept_drift", "iris:1", "critical", said, 3.0, since=1000.0)
        # A version not served (here: none such) is left to resolve unjudged, in time.
        elsewhere = dataclasses.replace(fired, model="iris:7")
        served.monitor.alerts.resume(AlertState(active=(fired, elsewhere)))
        served.monitor.flush()
        reply = await served.client.get("/api/monitoring/iris")
        assert reply.status_code == 200, reply.text
        performance = reply.json()["performance"]
        assert reply.json()["concept_drift"] is True
        assert (performance["judged"], performance["labels"]) == (False, 0)
        assert gauge(served.monitor) == 1.0
        assert served.monitor.model_monitor("iris", 7) is None
        assert len(served.monitor.alert_state().active) == 2


def test_a_version_no_longer_served_resolves_on_why_its_window_cannot_judge() -> None:
    window = PerformanceWindow(
        "classification",
        [0, 1],
        {"accuracy": 0.95},
        None,
        max_rows=100,
        max_seconds=3600,
        thresholds=PerformanceThresholds(min_labels=30),
    )
    for i in range(40):
        window.add(i % 2, 1 - i % 2, None, at=1000.0)
    book = AlertBook(rules=AT_ONCE)
    (fired,) = book.update(model_conditions([_report(window.report(now=1000.0))]), now=1.0)
    assert fired.rule == "concept_drift"
    held = window.report(now=9000.0, held=True)  # aged out
    (condition,) = [
        c for c in model_conditions([_report(held)], 30, {"iris": 2}) if c.rule == "concept_drift"
    ]
    assert condition.judged and not condition.holds
    assert condition.message == "no labels in the window (iris's requests go to version 2 now)"
    (served,) = [c for c in model_conditions([_report(held)]) if c.rule == "concept_drift"]
    assert not served.judged and served.message.startswith("concept drift found at ")


def _report(performance: PerformanceReport | None) -> ModelReport:
    return ModelReport("iris", "1", 0, 0, None, None, performance, [])
