"""Macro F1 is the mean over the classes the labels hold: a class the window's labels lack
has no F1 of its own, and counted as 0 it read a fall in F1, and concept drift, while the
model's accuracy rose."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.quality import classification_metrics


def test_a_class_only_predicted_is_not_averaged_in() -> None:
    truth, predicted = [0, 0, 1, 3], [0, 2, 1, 1]
    ours = classification_metrics(truth, predicted, [None] * 4, [0, 1, 2, 3])
    held = np.unique(truth)
    expected = metrics.f1_score(truth, predicted, labels=held, average="macro", zero_division=0)
    assert ours["f1"] == pytest.approx(expected, abs=1e-12)
    # Its false predictions still count, as misses of the classes the rows were.
    assert ours["f1"] < classification_metrics([0, 0, 1, 3], [0, 0, 1, 3], [None] * 4, [0])["f1"]


@pytest.mark.parametrize("seed", range(4))
def test_the_figure_is_scikit_learns_over_the_classes_the_labels_hold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    truth = rng.integers(0, 3, n).tolist()  # classes 3 and 4 only predicted
    predicted = rng.integers(0, 5, n).tolist()
    ours = classification_metrics(truth, predicted, [None] * n, [0, 1, 2, 3, 4])
    expected = metrics.f1_score(
        truth, predicted, labels=np.unique(truth), average="macro", zero_division=0
    )
    assert ours["f1"] == pytest.approx(expected, abs=1e-12)


def test_a_window_missing_a_class_is_no_fall_in_f1() -> None:
    """200 labels of classes 0 and 1 of a 3-class model as good as at registration (60% of
    rows right; a few predicted 2): F1 read 0.45 against 0.58, "f1 degraded"."""
    window = PerformanceWindow(
        "classification",
        [0, 1, 2],
        {"accuracy": 0.582, "f1": 0.582},
        None,
        1000,
        3600.0,
        PerformanceThresholds(min_labels=30),
        known_classes=[0, 1, 2],
    )
    rng = np.random.default_rng(7)
    for _ in range(200):
        truth = int(rng.integers(0, 2))
        draw = rng.random()
        predicted = truth if draw < 0.6 else (1 - truth if draw < 0.9 else 2)
        window.add(truth, predicted, None, at=None)
    report = window.report()
    assert report is not None and report.judged
    assert report.current["f1"] > 0.5 and report.current["accuracy"] > 0.5
    assert report.degraded == [] and report.concept_drift is False
