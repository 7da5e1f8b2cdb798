"""The window of labelled predictions: which labels it takes, and when the labels' own
distribution counts as moved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.store import Registry

IRIS_LABELS = {"0": 50, "1": 50, "2": 50}
"""Iris's reference labels: 50 of each class."""


def window(
    task: str = "classification",
    known: list[object] | None = None,
    reference_labels: dict[str, int] | None = None,
) -> PerformanceWindow:
    thresholds = PerformanceThresholds(min_labels=30)
    if known is None:  # as a model that does not say what its classes are
        classes = list(reference_labels or [])
        return PerformanceWindow(task, classes, {}, reference_labels, 1000, 3600.0, thresholds)
    classes = [str(c) for c in known]
    return PerformanceWindow(
        task, classes, {}, reference_labels, 1000, 3600.0, thresholds, known_classes=known
    )


def test_a_classifier_takes_its_classes_as_the_metrics_compare_them() -> None:
    iris = window(known=[0, 1, 2])
    assert [iris.checked(v) for v in (0, 2, 1.0, "1")] == [0, 2, 1.0, "1"]
    for label in (7, -1, 1.5, 1e308, "setosa", "1.0", True, False):
        with pytest.raises(ValueError, match=r"is not one of the model's classes \(0, 1, 2\)"):
            iris.checked(label)
    named = window(known=["setosa", "versicolor", "virginica"])
    assert named.checked("virginica") == "virginica"
    with pytest.raises(ValueError, match=r'label "Setosa" is not one of .*"setosa", "versicolor"'):
        named.checked("Setosa")


def test_a_classifier_of_booleans_takes_one_and_zero_and_true_and_false() -> None:
    booleans = window(known=[False, True])
    assert [booleans.checked(v) for v in (1, 0, 1.0, "0", "true", " False ", True)] == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
    ]
    for label in (2, -1, "yes", 0.5):
        with pytest.raises(ValueError, match=r'\(false, true; 1 and 0, "true" and "false"'):
            booleans.checked(label)


def test_a_long_list_of_classes_is_cut_short_in_the_message() -> None:
    many = window(known=list(range(100)))
    with pytest.raises(ValueError, match=r"\(0, 1, .*, 19 and 80 more\); send one of those"):
        many.checked(100)


def test_a_model_that_does_not_list_its_classes_takes_any_string_or_number() -> None:
    unknown = window(known=None)
    assert [unknown.checked(v) for v in (7, "setosa", 1.5)] == [7, "setosa", 1.5]
    with pytest.raises(ValueError, match="is not a class"):
        unknown.checked(None)


def test_a_regression_takes_finite_numbers_of_any_size() -> None:
    regression = window("regression")
    assert [regression.checked(v) for v in (151.5, 151, 1e200, -1e308)] == [
        151.5,
        151.0,
        1e200,
        -1e308,
    ]
    # 10**400 is an int no float64 holds: float() raised OverflowError, not ValueError.
    for label in ("abc", "nan", "inf", "-Infinity", "1e400", 10**400, True, None, [1.0]):
        with pytest.raises(ValueError, match="is not a finite number, as a regression needs"):
            regression.checked(label)
    # A number written as text is a slip in the client, as the README has it: refused.
    for label in ("151.5", "1", " 2 "):
        with pytest.raises(ValueError, match=r"a regression needs \(send a JSON number, not"):
            regression.checked(label)


def test_a_label_shift_must_be_significant_as_well_as_large() -> None:
    """40 labels drawn from iris's three equal classes: a Jensen-Shannon distance over 0.1 is
    sampling noise there more than a third of the time, and flagged a critical concept drift
    every time. It must also be significant, by a chi-squared test at p < 0.01."""
    noise = window(reference_labels=IRIS_LABELS)
    for label in [0] * 9 + [1] * 14 + [2] * 17:  # a draw of 40 (numpy seed 4, below)
        noise.add(label, label, None, at=None)
    report = noise.report()
    assert report is not None and report.labels == 40
    assert report.label_shift == pytest.approx(0.109, abs=1e-3)  # past 0.1: it used to flag
    assert report.concept_drift is False and report.reason == ""
    assert report.label_shift_p_value is not None and report.label_shift_p_value > 0.3

    shifted = window(reference_labels=IRIS_LABELS)
    for label in [0] * 30 + [1] * 5 + [2] * 5:  # three quarters one class: a real move
        shifted.add(label, label, None, at=None)
    report = shifted.report()
    assert report is not None and report.concept_drift is True
    assert report.label_shift_p_value is not None and report.label_shift_p_value < 1e-4
    assert "label distribution moved (Jensen-Shannon distance 0.361, chi-squared p-value" in (
        report.reason
    )


def test_label_shift_rarely_flags_samples_of_the_reference_distribution() -> None:
    rng = np.random.default_rng(0)
    flagged = []
    for _ in range(300):
        labels = window(reference_labels=IRIS_LABELS)
        for label in rng.integers(0, 3, 40).tolist():
            labels.add(label, label, None, at=None)
        report = labels.report()
        assert report is not None
        flagged.append(report.concept_drift)
    assert np.mean(flagged) <= 0.02  # about the test's 1%; it was 37% on distance alone


def test_forty_true_labels_of_training_rows_raise_no_concept_drift(
    labelled_iris: Registry,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """The tester's case: 40 random training rows of iris and their true labels, posted to
    a served copy of the model, raised "label distribution moved (Jensen-Shannon distance
    0.109)". The test's level is data drift's (``MODELPILOT_DRIFT_P_VALUE``)."""
    monitor = Monitor(labelled_iris, MonitorConfig(drift=DriftThresholds(p_value=0.05)))
    version = labelled_iris.get_version("iris", 1)
    rows = np.random.default_rng(4).choice(150, 40, replace=False)
    inputs = iris_frame.to_numpy()[rows]
    ids = [f"r{i}" for i in range(40)]
    predicted = {"predict": iris_model.predict(iris_frame.iloc[rows])}
    monitor.predicted(version, ids, [1] * 40, {"input-0": inputs}, predicted)
    monitor.flush()
    result = monitor.feedback("iris", dict(zip(ids, iris_target[rows].tolist(), strict=True)))
    assert result.accepted == 40
    report = monitor.report("iris").performance
    assert report is not None and report.label_shift is not None and report.label_shift > 0.1
    assert report.concept_drift is False
    assert [a.rule for a in monitor.alerts.active.values()] == []
    watched = monitor.model_monitor("iris", 1)
    assert watched is not None and watched.performance.p_value == 0.05
    monitor.stop()


def test_a_correction_of_rows_alike_but_for_their_probabilities_replaces_the_label() -> None:
    # Labels posted in one call share their time: rows alike in all but their probabilities
    # were compared array against array when one was corrected (a 500).
    window = PerformanceWindow(
        "classification", ["0", "1"], {}, None, 100, 3600.0, PerformanceThresholds()
    )
    for i in range(3):
        window.add("1", "1", np.array([0.1 * i, 1 - 0.1 * i]), 5.0, (f"r{i}", 0))
    window.add("0", "1", np.array([0.2, 0.8]), 6.0, ("r2", 0))
    assert window.total == 3
    assert [row.truth for row in window.rows(10.0)] == ["1", "1", "0"]


def test_labels_left_uncounted_still_join_the_window() -> None:
    window = PerformanceWindow(
        "classification", ["0", "1"], {}, None, 100, 3600.0, PerformanceThresholds()
    )
    window.add("1", "1", None, 5.0, ("r1", 0), count=False)  # restored: counted when posted
    window.add("0", "1", None, 5.0, ("r2", 0))
    assert window.total == 1 and len(window.rows(10.0)) == 2


def test_a_regressions_labels_of_predictions_that_are_no_number_are_left_out() -> None:
    """One NaN prediction made MAE and RMSE NaN for as long as it stayed in the window."""
    thresholds = PerformanceThresholds(min_labels=3)
    errors = PerformanceWindow("regression", [], {"mae": 1.0}, None, 1000, 3600.0, thresholds)
    for n, predicted in enumerate([10.0, float("nan"), 12.0, None, float("inf"), 14.0]):
        errors.add(11.0, predicted, None, at=None, key=(f"r{n}", 0))
    report = errors.report()
    assert report is not None
    assert (report.labels, report.unscored) == (6, 3)
    # Errors of 1, 1 and 3 on the three finite predictions.
    assert report.current == pytest.approx({"mae": 5 / 3, "rmse": (11 / 3) ** 0.5})
    assert report.to_dict()["unscored"] == 3
    for n in range(3):  # nothing a finite number: no figures, rather than NaN
        errors.add(11.0, None, None, at=None, key=(f"r{n}", 0))
    errors.add(11.0, float("nan"), None, at=None, key=("r5", 0))
    report = errors.report()
    assert report is not None and report.current == {} and report.unscored == 6


def test_the_quality_thresholds_and_window_age_are_settings() -> None:
    """The error-rise threshold, the label-shift distance and the window's age were fixed in
    code: ``MODELPILOT_PERFORMANCE_MAX_ERROR_INCREASE`` was warned of as no setting."""
    from modelpilot.config import Settings, unknown_settings
    from modelpilot.monitoring.process import monitor_config

    names = [
        "MODELPILOT_PERFORMANCE_MAX_ERROR_INCREASE",
        "MODELPILOT_PERFORMANCE_LABEL_SHIFT",
        "MODELPILOT_PERFORMANCE_WINDOW_SECONDS",
    ]
    assert unknown_settings(dict.fromkeys(names, "1")) == []
    settings = Settings(
        performance_max_error_increase=0.5,
        performance_label_shift=0.25,
        performance_window_seconds=60,
    )
    config = monitor_config(settings)
    thresholds = config.performance
    assert (thresholds.max_error_increase, thresholds.label_shift) == (0.5, 0.25)
    errors = PerformanceWindow(
        "regression", [], {"mae": 1.0}, None, 1000, config.performance_seconds, thresholds
    )
    for i in range(40):  # every error 1.4: 40% over the reference, under the 50% allowed
        errors.add(10.0, 11.4 if i % 2 else 8.6, None, at=1000.0 + i)
    report = errors.report(now=1050.0)
    assert report is not None and report.labels == 40 and report.concept_drift is False
    assert errors.report(now=1100.0) is None  # a minute after the last label: all aged out
