"""Quality metrics: the same figures as scikit-learn's, computed without it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from modelpilot.registry.quality import classification_metrics, label_key


def sklearn_figures(
    truth: list[object], predicted: list[object], proba: np.ndarray | None, classes: list[object]
) -> dict[str, float]:
    y_true = np.array([label_key(v) for v in truth])
    y_pred = np.array([label_key(v) for v in predicted])
    figures = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "f1": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
    if proba is not None:
        labels = [label_key(c) for c in classes]
        keep = [i for i, label in enumerate(labels) if label in set(y_true)]
        sub = proba[:, keep] / proba[:, keep].sum(axis=1, keepdims=True)
        if len(keep) == 2:
            figures["auc"] = metrics.roc_auc_score(y_true == labels[keep[1]], sub[:, 1])
        else:
            kept = [labels[i] for i in keep]
            figures["auc"] = metrics.roc_auc_score(y_true, sub, multi_class="ovr", labels=kept)
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
    # Class 2 is only predicted, class 3 only true: both count in the macro F1, at zero.
    truth, predicted = [0, 0, 1, 3], [0, 2, 1, 1]
    ours = classification_metrics(truth, predicted, [None] * 4, [0, 1, 2, 3])
    assert ours == pytest.approx(sklearn_figures(truth, predicted, None, [0, 1, 2, 3]))
    assert "auc" not in ours  # no probabilities
    one_class = classification_metrics([1, 1], [1, 0], [np.array([0.2, 0.8])] * 2, [0, 1])
    assert "auc" not in one_class and one_class["accuracy"] == 0.5
