"""AUC: one class against the rest on the model's own probabilities, macro-averaged over the
classes the labels hold; scikit-learn's figure whenever the labels hold every class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from modelpilot.monitoring.resampling import _classification
from modelpilot.registry.quality import classification_metrics

IRIS = ["setosa", "versicolor", "virginica"]


def probabilities(rows: int, classes: int, seed: int) -> np.ndarray:
    """A model's probabilities (rows sum to 1), rounded so that scores tie."""
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet(np.ones(classes), size=rows).round(2) + 1e-3
    return np.asarray(raw / raw.sum(axis=1, keepdims=True))


def auc(truth: list[str], proba: np.ndarray, classes: list[object]) -> float:
    figures = classification_metrics(truth, truth, list(proba), classes)
    return figures["auc"]


@pytest.mark.parametrize("seed", range(5))
def test_with_every_class_present_it_is_scikit_learns_ovr_macro(seed: int) -> None:
    rng = np.random.default_rng(seed)
    proba = probabilities(200, 3, seed)
    truth = [IRIS[i] for i in rng.integers(0, 3, 200)]
    expected = metrics.roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=IRIS)
    assert auc(truth, proba, IRIS) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_a_binary_model_is_scored_on_its_second_class_as_scikit_learn_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    proba = probabilities(150, 2, seed)
    truth = [str(i) for i in rng.integers(0, 2, 150)]
    expected = metrics.roc_auc_score(truth, proba[:, 1])
    assert auc(truth, proba, [0, 1]) == pytest.approx(expected, abs=1e-12)


def test_a_window_of_some_classes_averages_their_own_aucs_on_the_models_probabilities() -> None:
    """Iris labelled with versicolor and virginica alone: the AUC was that of a binary model
    of the two, on their probabilities rescaled to sum to 1; it is the mean of each present
    class's AUC against the rest, on the probabilities the model gave."""
    rng = np.random.default_rng(7)
    proba = probabilities(80, 3, 7)
    truth = [IRIS[i] for i in rng.integers(1, 3, 80)]
    labels = np.array(truth)
    each = [metrics.roc_auc_score(labels == IRIS[i], proba[:, i]) for i in (1, 2)]
    ours = auc(truth, proba, IRIS)
    assert ours == pytest.approx(np.mean(each), abs=1e-12)
    pair = proba[:, 2] / (proba[:, 1] + proba[:, 2])
    assert ours != pytest.approx(metrics.roc_auc_score(labels == "virginica", pair), abs=1e-6)


def test_the_bootstrap_scores_auc_as_the_window_does() -> None:
    """The resamples' AUC (``resampling``) follows the same definition: a resample that drew
    every row once has the window's AUC."""
    rng = np.random.default_rng(8)
    proba = probabilities(60, 3, 8)
    truth = [IRIS[i] for i in rng.integers(1, 3, 60)]
    once = np.ones((1, 60))
    figures = _classification(truth, truth, list(proba), IRIS, once)
    assert figures["auc"][0] == pytest.approx(auc(truth, proba, IRIS), abs=1e-12)
