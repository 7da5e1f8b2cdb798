"""A fall below the reference counts as concept drift only when it is more than noise: the
window's bootstrap (``resampling``) must find it significant as well as large."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.monitoring.resampling import _classification, _regression, p_values
from modelpilot.registry.quality import classification_metrics, regression_metrics

REFERENCE = {"accuracy": 0.857, "f1": 0.8567}
"""The tester's model at registration (held-out data): a binary classifier."""


def window(reference: dict[str, float], task: str = "classification") -> PerformanceWindow:
    classes = [0, 1] if task == "classification" else []
    return PerformanceWindow(
        task,
        classes,
        reference,
        None,
        max_rows=1000,
        max_seconds=3600,
        thresholds=PerformanceThresholds(min_labels=30),
        known_classes=classes,
    )


def labelled(reference: dict[str, float], correct: list[bool]) -> PerformanceWindow:
    """A binary classifier's window: alternating classes, predicted right where ``correct``."""
    labels = window(reference)
    for i, right in enumerate(correct):
        truth = i % 2
        labels.add(truth, truth if right else 1 - truth, None, at=None)
    return labels


def test_each_resample_is_the_metric_of_the_rows_it_drew() -> None:
    """With every row drawn once, a resample's figures are the window's own."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 200).tolist()
    predicted = [t if rng.random() < 0.7 else int(rng.integers(0, 3)) for t in truth]
    proba = [p / p.sum() for p in rng.random((200, 3))]
    once = np.ones((1, 200))
    figures = _classification(truth, predicted, proba, [0, 1, 2], once)
    expected = classification_metrics(truth, predicted, proba, [0, 1, 2])
    assert {name: float(value[0]) for name, value in figures.items()} == pytest.approx(expected)
    values = rng.normal(size=200)
    guesses = values + rng.normal(scale=0.3, size=200)
    errors = _regression(values.tolist(), guesses.tolist(), once)
    assert {k: float(v[0]) for k, v in errors.items()} == pytest.approx(
        regression_metrics(values.tolist(), guesses.tolist())
    )
    # Twice each row is the same window again.
    twice = _classification(truth, predicted, proba, [0, 1, 2], np.full((1, 200), 2.0))
    assert {name: float(value[0]) for name, value in twice.items()} == pytest.approx(expected)


def test_a_small_fall_on_thirty_labels_is_noise() -> None:
    """The tester's case: 30 labels, 22 right (0.733 against 0.857 at registration; a
    binomial test gives p = 0.055) raised a critical concept-drift alert."""
    report = labelled(REFERENCE, [True] * 22 + [False] * 8).report()
    assert report is not None and report.current["accuracy"] == pytest.approx(22 / 30)
    assert report.current["accuracy"] < REFERENCE["accuracy"] - 0.1  # past the threshold
    assert report.concept_drift is False and report.degraded == []


def test_a_real_fall_is_flagged_with_its_p_value() -> None:
    report = labelled(REFERENCE, [True, False] * 30).report()  # 60 labels, half right
    assert report is not None and report.concept_drift is True
    assert report.degraded == ["accuracy", "f1"]
    assert report.reason.startswith("accuracy 0.5 against 0.857 at registration (bootstrap")


def test_a_model_as_good_as_ever_rarely_raises_concept_drift_on_small_windows() -> None:
    """300 windows of 30 labels from a model exactly as good as at registration (each
    prediction right with the registered accuracy): the fall alone flagged one in nine."""
    rng = np.random.default_rng(0)
    fell, flagged = [], []
    for _ in range(300):
        report = labelled(REFERENCE, (rng.random(30) < 0.857).tolist()).report()
        assert report is not None
        fell.append(any(report.current[k] < REFERENCE[k] - 0.1 for k in REFERENCE))
        flagged.append(report.concept_drift)
    assert np.mean(fell) >= 0.05  # the fixed threshold alone: five times the test's level
    assert np.mean(flagged) <= 0.01, np.mean(flagged)


def test_an_error_that_rose_is_judged_the_same_way() -> None:
    errors = window({"mae": 1.0, "rmse": 1.2}, task="regression")
    for i in range(40):
        errors.add(10.0, 10.0 + (2.0 if i % 2 else -2.0), None, at=None)  # every error 2
    report = errors.report()
    assert report is not None and report.concept_drift is True
    assert report.degraded == ["mae", "rmse"]
    one_off = window({"mae": 1.0, "rmse": 1.2}, task="regression")
    for i in range(40):  # 39 errors of 1, one of 40: a single row makes MAE 1.98
        one_off.add(10.0, 10.0 + (40.0 if i == 0 else 1.0), None, at=None)
    report = one_off.report()
    assert report is not None and report.current["mae"] == pytest.approx(1.975)
    assert report.concept_drift is False  # a resample without that row is as good as ever


def test_p_values_are_the_same_every_time_for_the_same_window() -> None:
    truth = [i % 2 for i in range(40)]
    predicted = [t if i % 4 else 1 - t for i, t in enumerate(truth)]
    first = p_values("classification", truth, predicted, [None] * 40, [0, 1], REFERENCE)
    again = p_values("classification", truth, predicted, [None] * 40, [0, 1], REFERENCE)
    assert first == again and set(first) == {"accuracy", "f1"}
    assert all(0 < p <= 1 for p in first.values())
