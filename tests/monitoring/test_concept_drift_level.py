"""Concept drift's level is spent over a look's tests and over the sizes a growing window is
judged at, so that a model as good as at registration rarely raises it (a tester's 3-class
classifier did in 10% of its first 1,000 labels, a Ridge regressor in 4.6%), while a real
fall is still caught within a few dozen labels."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.monitoring.looks import LOOKS_PER_SIZE
from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.monitoring.resampling import look_level, p_values

REFERENCE = {"accuracy": 0.857, "f1": 0.8567}
"""A binary classifier at registration (held-out data)."""

IRIS_LABELS = {"0": 50, "1": 50, "2": 50}


def window(
    reference: dict[str, float],
    task: str = "classification",
    reference_labels: dict[str, int] | None = None,
) -> PerformanceWindow:
    classes: list[object] = [] if task == "regression" else [0, 1]
    if reference_labels:
        classes = [0, 1, 2]
    return PerformanceWindow(
        task,
        classes,
        reference,
        reference_labels,
        max_rows=1000,
        max_seconds=86_400.0,
        thresholds=PerformanceThresholds(min_labels=30),
        known_classes=classes,
    )


def binary(correct: list[bool]) -> PerformanceWindow:
    """Alternating classes, predicted right where ``correct``."""
    labels = window(REFERENCE)
    for i, right in enumerate(correct):
        truth = i % 2
        labels.add(truth, truth if right else 1 - truth, None, at=None)
    return labels


def test_the_level_is_split_over_the_tests_and_the_sizes_of_a_growing_window() -> None:
    """From 30 labels to a window of 1000: sizes 30, 60, 120, 240, 480 and 960 on."""
    looks = 6 * LOOKS_PER_SIZE
    assert look_level(0.01, 4, 30, 1000) == pytest.approx(0.01 / 4 / looks)
    assert look_level(0.01, 2, 100, 1000) == pytest.approx(0.01 / 2 / 4 / LOOKS_PER_SIZE)
    assert look_level(0.01, 1, 50, 50) == pytest.approx(0.01 / LOOKS_PER_SIZE)
    classifier = window({**REFERENCE, "auc": 0.9}, reference_labels=IRIS_LABELS)
    assert classifier.level({"accuracy": 0.8, "f1": 0.8, "auc": 0.9}) == pytest.approx(
        0.01 / 4 / looks
    )
    assert classifier.level({"accuracy": 0.8, "f1": 0.8}) == pytest.approx(0.01 / 3 / looks)
    errors = window({"mae": 1.0, "rmse": 1.2}, task="regression")
    assert errors.level({"mae": 1.0, "rmse": 1.2}) == pytest.approx(0.01 / 2 / looks)


def test_a_fall_significant_only_at_the_whole_level_is_not_concept_drift() -> None:
    """42 of 60 right (0.7 against 0.857): a binomial test gives p = 0.0014, under 0.01 but
    not under the 0.00028 (0.01 / 2 tests / 6 sizes / 3 looks a size) each test of this
    look is judged at. It flagged."""
    report = binary([True] * 42 + [False] * 18).report()
    assert report is not None and report.current["accuracy"] == pytest.approx(0.7)
    assert report.concept_drift is False and report.degraded == []


def test_a_label_shift_significant_only_at_the_whole_level_is_not_concept_drift() -> None:
    """20, 5 and 5 of 30 labels against iris's 50 of each: Jensen-Shannon 0.29, chi-squared
    p 0.0029, which flagged; the label test's share of the level here is 0.01 / 6."""
    labels = window({}, reference_labels=IRIS_LABELS)
    for label in [0] * 20 + [1] * 5 + [2] * 5:
        labels.add(label, label, None, at=None)
    report = labels.report()
    assert report is not None and report.label_shift_p_value == pytest.approx(0.0029, abs=1e-4)
    assert report.label_shift is not None and report.label_shift > 0.1
    assert report.concept_drift is False
    moved = window({}, reference_labels=IRIS_LABELS)
    for label in [0] * 22 + [1] * 4 + [2] * 4:  # p 1.4e-4: moved
        moved.add(label, label, None, at=None)
    report = moved.report()
    assert report is not None and report.concept_drift is True


def test_p_values_resolve_levels_far_below_one_resample_in_four_hundred() -> None:
    """The bootstrap's count of resamples could not go below 1/401, more than the level a
    look's test is judged at; the normal tail in bootstrap standard errors can."""
    truth = [i % 2 for i in range(60)]
    predicted = [t if i % 2 else 1 - t for i, t in enumerate(truth)]  # half right
    found = p_values("classification", truth, predicted, [None] * 60, [0, 1], REFERENCE)
    assert found["accuracy"] < 1e-6 and found["f1"] < 1e-6
    even = p_values("classification", truth, truth, [None] * 60, [0, 1], REFERENCE)
    assert even == {"accuracy": 1.0, "f1": 1.0}  # all right: no fall at all


def test_a_real_fall_is_still_caught_within_a_few_dozen_labels() -> None:
    """Half right against 0.857 at the first look (30 labels); 0.7 right by 120."""
    first = binary([True, False] * 15).report()
    assert first is not None and first.concept_drift is True
    rng = np.random.default_rng(5)
    right = (rng.random(120) < 0.7).tolist()
    reports = [binary(right[:n]).report() for n in (30, 60, 90, 120)]
    flagged = [report is not None and report.concept_drift for report in reports]
    assert flagged[-1] is True, flagged


def test_a_model_as_good_as_ever_rarely_raises_concept_drift_while_its_window_grows() -> None:
    """400 streams of a regressor exactly as good as at registration (errors drawn as at
    registration), judged at every label from 30 to 120, where nearly all false alarms were:
    at the whole level each look, 19 of them flagged (4.6% of 1,000-label streams did); with
    the level spent over the tests and sizes, at most the level, 1%."""
    rng = np.random.default_rng(1)
    flagged = 0
    for _ in range(400):
        errors = window({"mae": 0.8, "rmse": 1.0}, task="regression")  # a normal error's
        for i, error in enumerate(rng.normal(size=120).tolist()):
            errors.add(0.0, error, None, at=1e9 + i)
            report = errors.report(now=1e9 + i)
            if report is not None and report.concept_drift:
                flagged += 1
                break
    assert flagged <= 4, flagged  # 4


def test_an_error_is_judged_on_its_logarithm() -> None:
    """A label of 1e308 and eleven of 1e200 among 40 (a client's slip): a resample without
    the largest still has an error of 1e200, and on the errors' own scale the resamples
    spread so wide that the fall was one standard error (p 0.16); on their logarithm, six."""
    rng = np.random.default_rng(0)
    truth = [1e200] * 11 + [1e308] + rng.normal(150, 70, 28).tolist()
    found = p_values("regression", truth, [150.0] * 40, [None] * 40, [], {"mae": 50.0})
    assert found["mae"] < 1e-8
    errors = window({"mae": 50.0, "rmse": 60.0}, task="regression")
    for i, label in enumerate(truth):
        errors.add(label, 150.0, None, at=None, key=i)
    report = errors.report()
    assert report is not None and report.degraded == ["mae", "rmse"]
