"""Quality metrics: the same figures as scikit-learn's, computed without it."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics
from sklearn.linear_model import LogisticRegression

from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.quality import (
    as_class,
    classification_metrics,
    label_key,
    regression_metrics,
)
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


def sklearn_figures(
    truth: list[object], predicted: list[object], proba: np.ndarray | None, classes: list[object]
) -> dict[str, float]:
    y_true = np.array([label_key(v) for v in truth])
    y_pred = np.array([label_key(v) for v in predicted])
    figures = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        # Over the classes the labels hold (``quality._macro_f1``).
        "f1": metrics.f1_score(
            y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0
        ),
    }
    if proba is not None:
        # A binary model's AUC is of its second class; else each class the labels hold
        # against the rest, on the model's own probabilities, averaged.
        labels = [label_key(c) for c in classes]
        if len(labels) == 2:
            figures["auc"] = metrics.roc_auc_score(y_true == labels[1], proba[:, 1])
        else:
            keep = [i for i, label in enumerate(labels) if label in set(y_true)]
            each = [metrics.roc_auc_score(y_true == labels[i], proba[:, i]) for i in keep]
            figures["auc"] = float(np.mean(each))
    return figures


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("classes", [[0, 1], [0, 1, 2], ["setosa", "versicolor", "virginica"]])
def test_the_figures_are_scikit_learns(seed: int, classes: list[object]) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    truth = [classes[i] for i in rng.integers(0, len(classes), n)]
    if len({label_key(t) for t in truth}) < 2:
        truth[0], truth[1] = classes[0], classes[1]
    predicted = [classes[i] for i in rng.integers(0, len(classes), n)]
    # Rounded, so that scores tie: ties are where AUC implementations differ.
    proba = rng.dirichlet(np.ones(len(classes)), size=n).round(1) + 1e-3
    ours = classification_metrics(truth, predicted, list(proba), classes)
    expected = sklearn_figures(truth, predicted, proba, classes)
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_labels_seen_only_in_the_predictions_or_in_the_truth() -> None:
    # Class 2 is only predicted: no F1 of its own; class 3 only true: its F1 is zero.
    truth, predicted = [0, 0, 1, 3], [0, 2, 1, 1]
    ours = classification_metrics(truth, predicted, [None] * 4, [0, 1, 2, 3])
    assert ours == pytest.approx(sklearn_figures(truth, predicted, None, [0, 1, 2, 3]))
    assert "auc" not in ours  # no probabilities
    one_class = classification_metrics([1, 1], [1, 0], [np.array([0.2, 0.8])] * 2, [0, 1])
    assert "auc" not in one_class and one_class["accuracy"] == 0.5


def test_a_classifier_of_booleans_reads_one_and_zero_as_true_and_false(
    registry: Registry, tmp_path: Path
) -> None:
    """Fitted on a boolean target, labelled 0/1 (as a database column would hold it): the
    labels are its classes, as scikit-learn compares them, not classes it never predicts."""
    assert [as_class(v, [False, True]) for v in (1, 0, 1.0, "1", "false", " True ", True)] == [
        True,
        False,
        True,
        True,
        False,
        True,
        True,
    ]
    assert as_class(2, [False, True]) == 2 and as_class(1, [0, 1]) == 1  # left as they are
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    model = LogisticRegression().fit(x, x["a"] > 0)  # classes [False, True]
    joblib.dump(model, tmp_path / "m.joblib")
    reference = x.assign(label=(x["a"] > 0).astype(int))
    version = register_model(
        registry, "m", tmp_path / "m.joblib", reference=reference, target="label"
    )
    assert version.metadata["reference_metrics"]["accuracy"] > 0.95  # it was 0.0
    window = PerformanceWindow(
        "classification", ["False", "True"], {}, None, 100, 60.0, PerformanceThresholds()
    )
    assert window.checked(1) is True and window.checked("0") is False


def test_regression_errors_are_numpys_and_stay_finite_for_huge_labels() -> None:
    rng = np.random.default_rng(0)
    truth, predicted = rng.normal(150, 60, 500), rng.normal(150, 60, 500)
    ours = regression_metrics(truth.tolist(), predicted.tolist())
    assert ours["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted), rel=1e-12)
    assert ours["rmse"] == pytest.approx(
        np.sqrt(metrics.mean_squared_error(truth, predicted)), rel=1e-12
    )
    # Squared as they were, errors past 1.3e154 made RMSE inf; a thousand near 1e306, MAE.
    huge = regression_metrics([1e200, 100.0], [150.0, 120.0])
    assert huge["mae"] == pytest.approx(5e199) and huge["rmse"] == pytest.approx(1e200 / 2**0.5)
    assert regression_metrics([1e308] * 1000, [0.0] * 1000) == {"mae": 1e308, "rmse": 1e308}
    edge = regression_metrics([1.5e308, -1.5e308], [-1e307, 1e307])  # errors of 1.6e308
    assert edge["mae"] == pytest.approx(1.6e308) and edge["rmse"] == pytest.approx(1.6e308)
    assert regression_metrics([3.0, 4.0], [3.0, 4.0]) == {"mae": 0.0, "rmse": 0.0}
