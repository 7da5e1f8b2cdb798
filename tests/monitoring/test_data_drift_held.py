"""Data drift over a window too small to judge (its rows aged out, too few since, a restart)
holds in the report and its gauges as in the alert: ``modelpilot_feature_drifted`` and
``modelpilot_drifted_features_share`` read 0 while the data_drift alert held at 0.5, and the
shipped Prometheus rule on the gauge resolved whenever traffic paused."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.alert_rules import model_conditions
from modelpilot.monitoring.alerts import Alert, AlertRules, AlertState, Condition
from modelpilot.monitoring.drift_results import (
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    HeldDrift,
    holding,
)
from modelpilot.monitoring.model_metrics import ModelCollector
from modelpilot.monitoring.model_monitor import ModelReport, MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import reference_traffic, shifted_traffic

AT_ONCE = AlertRules(keep_firing_seconds=0.0)
SHIFTED = ["sepal_length", "sepal_width"]


def gauges(monitor: Monitor) -> dict[str, float | None]:
    """iris:1's drift gauges, as /metrics exports them."""
    registry = CollectorRegistry()
    registry.register(ModelCollector(monitor))
    labels = {"model": "iris", "version": "1"}
    found = {
        name: registry.get_sample_value(name, labels)
        for name in ("modelpilot_drifted_features_share", "modelpilot_dataset_drift")
    }
    for feature in ("sepal_length", "petal_width"):
        found[feature] = registry.get_sample_value(
            "modelpilot_feature_drifted", {**labels, "feature": feature}
        )
    return found


def score(monitor: Monitor, registry: Registry, rows: np.ndarray) -> None:
    version = registry.get_version("iris", 1)
    for i in range(0, len(rows), 10):
        chunk = rows[i : i + 10]
        outputs = {"predict": np.zeros(len(chunk), dtype=np.int64)}
        ids = [f"r{time.time()}-{i + j}" for j in range(len(chunk))]
        monitor.predicted(version, ids, [1] * len(chunk), {"input-0": chunk}, outputs)


def test_an_emptied_window_holds_the_drift_its_alert_holds(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    config = MonitorConfig(window_rows=100, window_seconds=1.0)
    monitor = Monitor(labelled_iris, config, AT_ONCE)
    try:
        score(monitor, labelled_iris, shifted_traffic(iris_frame, 100, seed=1))
        monitor.flush()
        (fired,) = monitor.alerts.active.values()
        assert fired.rule == "data_drift" and fired.value == 0.5
        assert fired.drifted == tuple(SHIFTED)
        judged = gauges(monitor)
        assert judged["sepal_length"] == 1.0 and judged["modelpilot_drifted_features_share"] == 0.5

        time.sleep(1.1)  # every row ages out of the window
        monitor.flush()
        drift = monitor.report("iris").drift
        assert drift is not None and drift.rows == 0 and not drift.judged
        assert drift.drifted_features == SHIFTED and drift.drifted_share == 0.5
        assert drift.verdict == "no rows in the window"  # the window's own, for the alert
        shown = drift.to_dict()
        assert shown["judged"] is False
        assert shown["verdict"] == (
            "no rows in the window; the drift last judged holds until the window can judge "
            "again, as its alert does: 2 of 4 features drifted (sepal_length, sepal_width)"
        )
        (length,) = [f for f in drift.features if f.name == "sepal_length"]
        assert length.method == "none" and length.reason == (
            "no rows in the window; drifted at the verdict last judged, which holds until the "
            "window can judge again"
        )
        held = gauges(monitor)
        assert held["sepal_length"] == 1.0 and held["petal_width"] == 0.0
        assert held["modelpilot_drifted_features_share"] == 0.5
        assert held["modelpilot_dataset_drift"] == 1.0  # half the features, as judged
        (alert,) = monitor.alert_state().active
        assert (alert.since, alert.value, alert.resolved_at) == (fired.since, 0.5, None)
        assert alert.message == (
            "no rows in the window; without a verdict the alert holds, at the value last judged"
        )

        # A window that judges again decides: no drift, and the alert resolves (at once).
        score(monitor, labelled_iris, reference_traffic(iris_frame, 100, seed=2))
        monitor.flush()
        assert monitor.alert_state().active == ()
        monitor.flush()
        drift = monitor.report("iris").drift
        assert drift is not None and drift.judged and drift.drifted_features == []
        healthy = gauges(monitor)
        assert healthy["sepal_length"] == 0.0
        assert healthy["modelpilot_drifted_features_share"] == 0.0

        # Emptied again, with no alert to hold: nothing is held.
        time.sleep(1.1)
        monitor.flush()
        drift = monitor.report("iris").drift
        assert drift is not None and drift.drifted_features == [] and drift.held == ""
        assert gauges(monitor)["modelpilot_drifted_features_share"] == 0.0
    finally:
        monitor.stop()


def test_a_restarted_server_holds_the_drift_of_an_alert_it_took_over(
    labelled_iris: Registry,
) -> None:
    """Its windows came back empty (its rows had aged out): the report holds, from the first
    evaluation and without a request, the features its alert book kept."""
    monitor = Monitor(labelled_iris, MonitorConfig(), AT_ONCE)
    try:
        said = "2 of 4 features drifted: sepal_length, sepal_width"
        fired = Alert(
            "data_drift", "iris:1", "warning", said, 0.5, since=1000.0, drifted=tuple(SHIFTED)
        )
        monitor.alerts.resume(AlertState(active=(fired,)))
        monitor.flush()
        drift = monitor.report("iris").drift
        assert drift is not None and drift.rows == 0
        assert drift.drifted_features == SHIFTED and drift.drifted_share == 0.5
        assert gauges(monitor)["sepal_length"] == 1.0
        (alert,) = monitor.alert_state().active
        assert alert.id == fired.id and alert.value == 0.5
    finally:
        monitor.stop()


def test_a_held_drift_is_no_verdict_to_the_alert_rule() -> None:
    """The features a report holds drifted do not hold the rule: a version no longer served
    resolves on why its window cannot judge, not on the drift it held."""
    nothing = float("nan")
    x = FeatureDrift(
        "x", "numeric", 0, "none", nothing, 0.2, False, "no rows in the window",
        nothing, nothing, nothing, nothing, None, nothing, nothing,
    )  # fmt: skip
    window = DriftReport(0, (x, replace(x, name="y")), False, 0.0, "no rows in the window")
    held = holding(window, HeldDrift(("x",), 0.5), DriftThresholds())
    assert held.drifted_features == ["x"] and held.dataset_drift and not held.judged
    served = data_drift(held, None)
    assert not served.judged and served.message == "no rows in the window"
    left = data_drift(held, {"iris": 2})
    assert left.judged and not left.holds and left.drifted == ()
    assert left.message == "no rows in the window (iris's requests go to version 2 now)"


def data_drift(drift: DriftReport, serving: dict[str, int] | None) -> Condition:
    """The data_drift rule's verdict on a report of ``drift`` (``serving``: as the rule's)."""
    report = ModelReport("iris", "1", 0, 0, drift, None, None, [])
    (condition,) = [c for c in model_conditions([report], 30, serving) if c.rule == "data_drift"]
    return condition
