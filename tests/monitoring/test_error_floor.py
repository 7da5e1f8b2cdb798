"""A regression's errors against a reference error of 0: a rise relative to nothing is no
measure, so the baseline is at least a small share of the target's scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.performance import (
    ERROR_FLOOR,
    PerformanceReport,
    PerformanceThresholds,
    PerformanceWindow,
)
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model

CONSTANT = (
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, x):\n"
    "        return np.full(len(x), 5.0)\n"
)
"""A model that fits its constant target (5.0) exactly: MAE and RMSE 0 at registration."""


def errors_of(window: PerformanceWindow, off: list[float]) -> PerformanceReport:
    """``window`` given labels of a prediction of 5.0 that are ``off`` it, alternately up
    and down."""
    for i, error in enumerate(off):
        window.add(5.0 + (error if i % 2 else -error), 5.0, None, at=1000.0 + i)
    report = window.report(2000.0)
    assert report is not None
    return report


def regression(reference: dict[str, float], scale: float | None) -> PerformanceWindow:
    thresholds = PerformanceThresholds(min_labels=30)
    return PerformanceWindow(
        "regression", [], reference, None, 1000, 3600.0, thresholds, target_scale=scale
    )


def test_a_constant_target_fitted_exactly_raises_no_alert_on_a_tiny_error(
    registry: Registry, tmp_path: Path
) -> None:
    """The tester's case: MAE 0.0029 against 0 at registration was a critical concept-drift
    alert ("+20%" of 0). The target's scale (constant 5: its size) sets the floor."""
    path = tmp_path / "constant.py"
    path.write_text(CONSTANT)
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    version = register_model(
        registry, "const", path, flavor="python", reference=reference.assign(t=5.0), target="t"
    )
    assert version.metadata["reference_metrics"] == {"mae": 0.0, "rmse": 0.0}
    profile = registry.reference_profile("const", 1)
    monitor = ModelMonitor(version, profile, MonitorConfig())
    for i in range(40):
        monitor.label(5.0 + rng.choice([-0.01, 0.01]), 5.0, None, at=1000.0 + i)
    performance = monitor.report(2000.0).performance
    assert performance is not None and performance.current["mae"] == pytest.approx(0.01)
    assert performance.concept_drift is False and performance.degraded == []
    # A real error on that scale still flags, and says what it was judged against.
    for i in range(40):
        monitor.label(5.0 + rng.choice([-1.0, 1.0]), 5.0, None, at=1100.0 + i)
    performance = monitor.report(2000.0).performance
    assert performance is not None and performance.concept_drift is True
    assert sorted(performance.degraded) == ["mae", "rmse"]
    assert "mae 0.505 against 0 at registration, judged as 0.05 (1% of the target's scale)" in (
        performance.reason
    )


def test_the_floor_is_a_share_of_the_targets_scale_and_spares_larger_baselines() -> None:
    floored = regression({"mae": 0.0}, scale=2.0)
    assert floored.baselines == {"mae": ERROR_FLOOR * 2.0}
    assert errors_of(floored, [0.02] * 40).concept_drift is False  # at the floor: no rise
    assert errors_of(regression({"mae": 0.0}, 2.0), [0.05] * 40).degraded == ["mae"]
    # A reference error above the floor is judged by the relative rule alone, as before.
    plain = regression({"mae": 1.0}, scale=2.0)
    assert plain.baselines == {"mae": 1.0}
    assert errors_of(plain, [1.19] * 40).concept_drift is False
    assert errors_of(regression({"mae": 1.0}, 2.0), [1.5] * 40).degraded == ["mae"]


def test_without_a_scale_a_zero_error_is_not_judged_and_the_reason_says_why() -> None:
    """A stated ``mae=0`` of a model registered without reference data: nothing says how
    large an error is, so none is judged against 0, and the report says so."""
    report = errors_of(regression({"mae": 0.0, "rmse": 0.0}, scale=None), [3.0] * 40)
    assert report.concept_drift is False and report.degraded == []
    assert report.reason == (
        "mae not judged: it was 0 at registration, which no rise is relative to, and no "
        "reference labels give the errors a scale; rmse not judged: it was 0 at "
        "registration, which no rise is relative to, and no reference labels give the "
        "errors a scale"
    )
