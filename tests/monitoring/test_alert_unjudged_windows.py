"""A drift alert that fires holds while its window is too small to judge (no rows, too few
labels), as the error rate's does on too few requests: an empty window is no drift that ended.
A version no longer served resolves, since nothing will judge it again."""

from __future__ import annotations

import time

import pandas as pd

from modelpilot.monitoring.alert_rules import model_conditions
from modelpilot.monitoring.alerts import AlertBook, AlertRules
from modelpilot.monitoring.model_monitor import ModelReport, MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import shifted_traffic
from tests.monitoring.webhook_receiver import Receiver

AT_ONCE = AlertRules(keep_firing_seconds=0.0)


def test_a_drift_alert_holds_on_a_window_that_emptied(
    labelled_iris: Registry, iris_frame: pd.DataFrame, receiver: Receiver
) -> None:
    """A tester's worker 0, killed, was replaced with an empty share of the drift window: a
    minute later the webhook was told the data drift "resolved", "no drift", of a window that
    held no row."""
    config = MonitorConfig(window_rows=100, window_seconds=1.0)
    monitor = Monitor(labelled_iris, config, AT_ONCE, webhook_url=receiver.url)
    version = labelled_iris.get_version("iris", 1)
    try:
        rows = shifted_traffic(iris_frame, 100, seed=1)
        for i in range(0, 100, 10):
            ids = [f"r{i + j}" for j in range(10)]
            outputs = {"predict": rows[i : i + 10, 0].astype("int64") % 3}
            monitor.predicted(version, ids, [1] * 10, {"input-0": rows[i : i + 10]}, outputs)
        monitor.flush()
        (fired,) = monitor.alerts.active.values()
        assert fired.rule == "data_drift"
        time.sleep(1.1)  # every row ages out of the window
        monitor.flush()
        report = monitor.report("iris")
        assert report.drift is not None and report.drift.rows == 0
        (held,) = monitor.alert_state().active
        assert (held.since, held.resolved_at) == (fired.since, None)
        assert held.message == (
            "no rows in the window; without a verdict the alert holds, at the value last judged"
        )
        # Served no longer (its model's requests go to version 2): nothing will judge it
        # again, and it resolves, saying why.
        book = monitor.alerts
        (resolved,) = book.update(model_conditions([report], 30, {"iris": 2}))
        assert resolved.resolved_at is not None
        assert resolved.message == "no rows in the window (iris's requests go to version 2 now)"
    finally:
        monitor.stop()
    assert [alert["state"] for alert in receiver.alerts] == ["firing", "resolved"]


def test_a_concept_drift_alert_holds_on_too_few_labels() -> None:
    def window(right: int, wrong: int) -> ModelReport:
        labelled = PerformanceWindow(
            "classification",
            [0, 1],
            {"accuracy": 0.95},
            {"0": 50, "1": 50},
            max_rows=100,
            max_seconds=3600,
            thresholds=PerformanceThresholds(min_labels=30),
        )
        for i in range(right + wrong):
            labelled.add(i % 2, i % 2 if i < right else 1 - i % 2, None, at=None)
        return ModelReport("iris", "1", 0, 0, None, None, labelled.report(), [])

    book = AlertBook(rules=AT_ONCE)
    (fired,) = book.update(model_conditions([window(0, 40)]), now=1.0)
    assert fired.rule == "concept_drift"
    # Ten labels, all right: too few to say the model is well again (the labels of days,
    # gone with a crashed worker, or aged out), and to say it is not.
    changes = book.update(model_conditions([window(10, 0)]), now=2.0)
    assert [c for c in changes if c.rule == "concept_drift"] == []
    held = book.active[("concept_drift", "iris:1")]
    assert held.message == (
        "accuracy 1 against 0.95, f1 1 over 10 labels, fewer than the 30 judged from; without "
        "a verdict the alert holds, at the value last judged"
    )
    (resolved,) = [
        c for c in book.update(model_conditions([window(40, 0)]), now=3.0) if c.resolved_at
    ]
    assert resolved.rule == "concept_drift" and resolved.message.endswith("over 40 labels")
