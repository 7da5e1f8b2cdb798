"""A version registered without reference figures (no labelled reference data, none stated)
has its labels' quality shown but never judged, and its report says so, as drift says it is
not watched: a classifier wrong 98% of the time read "concept_drift": false with an empty
reason, which reads as "no concept drift"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelpilot.monitoring.alert_rules import model_conditions
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored, reference_traffic

NOT_JUDGED = (
    "quality not judged: the version has no reference figures to judge its labels against "
    "(register it with --reference DATA --target COLUMN, or state one with --metadata "
)


async def test_a_version_without_reference_figures_says_its_quality_is_not_judged(
    registry: Registry, iris_model_path: Path, iris_frame: pd.DataFrame
) -> None:
    register_model(registry, "iris", iris_model_path, aliases=["production"])
    async with monitored(registry, performance_min_labels=20) as served:
        answered = []
        for row in reference_traffic(iris_frame, 40, seed=5):
            reply = await served.client.post("/predict/iris", json={"data": row.tolist()})
            answered.append((reply.json()["id"], reply.json()["predictions"][0]))
        wrong = [{"request_id": i, "label": (p + 1) % 3} for i, p in answered]
        reply = await served.client.post("/api/feedback/iris", json={"labels": wrong})
        assert reply.json()["accepted"] == 40
        report = (await served.client.get("/api/monitoring/iris")).json()
    performance = report["performance"]
    assert performance["current"]["accuracy"] == 0.0 and performance["reference"] == {}
    assert performance["reason"] == NOT_JUDGED + "accuracy=0.95)"
    assert report["concept_drift"] is False and performance["judged"] is False
    assert report["quality_unjudged"] == NOT_JUDGED + "accuracy=0.95)"
    assert report["drift_unwatched"] is not None


def test_the_alert_rule_gives_no_verdict_on_what_it_cannot_judge() -> None:
    regression = PerformanceWindow(
        "regression", [], {}, None, 1000, 3600.0, PerformanceThresholds(min_labels=30)
    )
    assert regression.never_judged == NOT_JUDGED + "mae=12.5)"
    for value in np.linspace(0.0, 100.0, 40):
        regression.add(float(value), 0.0, None, at=None)
    performance = regression.report()
    assert performance is not None and not performance.judged
    assert performance.unjudged == performance.reason == regression.never_judged
    report = ModelReport("ridge", "1", 40, 40, None, None, performance, [])
    (concept,) = [c for c in model_conditions([report]) if c.rule == "concept_drift"]
    assert not concept.judged and not concept.holds
    # (Said by the rule; the alert book adds, of a firing alert, that it holds.)
    assert concept.message == f"mae 50, rmse 58.1 over 40 labels; {regression.never_judged}"
