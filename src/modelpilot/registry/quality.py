"""How good a model is on labelled rows: the metrics stored at registration and monitored live."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelpilot.errors import InvalidInput
from modelpilot.registry.signature import Signature

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "auc": True, "mae": False, "rmse": False}
"""Every metric ModelPilot computes, and which way is up."""

SCORES = ("accuracy", "f1", "auc")
"""The metrics that are shares, from 0 to 1; the others (``mae``, ``rmse``) are errors, from 0."""


def stated_metrics(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The quality figures ``metadata`` states (a ``metrics`` mapping, then its own keys such
    as ``accuracy``, which win), as the monitor reads them: live quality is judged against
    these rather than against what was measured on the reference data."""
    nested = metadata.get("metrics")
    stated = dict(nested) if isinstance(nested, Mapping) else {}
    stated.update(metadata)
    return {key: stated[key] for key in HIGHER_IS_BETTER if key in stated}


def computed_metrics(signature: Signature) -> tuple[str, ...]:
    """The metrics live labels of a model of ``signature`` are scored by, as registration
    and the label monitor compute them: a regression's errors; a classifier's accuracy and
    F1, and AUC where it gives probabilities of the classes it names (else there is no
    column of a class to rank by)."""
    if signature.task == "regression":
        return ("mae", "rmse")
    if signature.probabilities is not None and signature.extra.get("classes"):
        return ("accuracy", "f1", "auc")
    return ("accuracy", "f1")


def out_of_range(metric: str, value: float) -> str | None:
    """Why ``value`` can be no figure of ``metric`` (a score past 1 or below 0, an error
    below 0), or None. Live quality is judged against a stated figure: one no model can
    reach (accuracy=1.5, or 91 meant as 91%) raised a concept-drift alert that never ended."""
    if metric in SCORES and not 0.0 <= value <= 1.0:
        return f"{metric} is a share from 0 to 1 (such as {metric}=0.91 for 91%)"
    if metric not in SCORES and value < 0.0:
        return f"{metric} is an error, 0 or more, in the units of the target"
    return None


def refuse_unjudgeable_metrics(metadata: Mapping[str, Any]) -> None:
    """Refuse a stated quality figure that is not a finite number, or not one its metric
    can take (``out_of_range``).

    "91%" was kept as text, which the monitor cannot read: live quality was then judged
    against the figure measured on the reference data, with nothing said, though a stated
    figure is meant to win over it.
    """
    for key, value in stated_metrics(metadata).items():
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise InvalidInput(
                f"metadata {key}={value!r}: {key} is a quality figure live labels are judged "
                f"against, so it must be a finite number, such as {key}=0.91"
            )
        why = out_of_range(key, float(value))
        if why is not None:
            raise InvalidInput(
                f"metadata {key}={value!r}: {why}; live labels are judged against it, and "
                "no model reaches a figure past its range"
            )


def label_key(value: Any) -> str:
    """A class label as text, the same whether it came as 1, 1.0, "1", b"1" or numpy.int64(1)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_class(value: Any, classes: Sequence[Any]) -> Any:
    """``value`` read as a label of a classifier of ``classes``: for one of booleans, 1 and 0
    (as numbers or as text) and "true" and "false" are True and False, as scikit-learn
    compares them; any other value, or for other classes, is returned as it is."""
    keys = {label_key(c) for c in classes}
    if not keys or not keys <= {"False", "True"} or isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    return value


def classification_metrics(
    truth: list[Any], predicted: list[Any], proba: list[np.ndarray | None], classes: list[Any]
) -> dict[str, float]:
    """Accuracy and macro F1; AUC too when every row has probabilities and two classes occur.

    As scikit-learn's ``accuracy_score``, ``f1_score(average="macro", zero_division=0)``
    (over the classes the labels hold: see ``_macro_f1``) and ``roc_auc_score`` compute them
    (the tests hold them to it; for AUC see ``auc_columns``), in NumPy: the monitor
    recomputes them over its window at every evaluation and every feedback call, where
    scikit-learn's checks took milliseconds each."""
    y_true = np.array([label_key(v) for v in truth])
    y_pred = np.array([label_key(v) for v in predicted])
    result = {"accuracy": float(np.mean(y_true == y_pred)), "f1": _macro_f1(y_true, y_pred)}
    scored = auc_scores(y_true, proba, classes)
    if scored is not None:
        result["auc"] = _auc(y_true, *scored)
    return result


def auc_scores(
    y_true: np.ndarray, proba: list[np.ndarray | None], classes: Sequence[Any]
) -> tuple[np.ndarray, list[str], set[str]] | None:
    """What an AUC of labels ``y_true`` (as ``label_key`` gives them) is computed over: every
    row's probabilities, the classes' labels and those the labels hold; None when there is
    no AUC (a row without probabilities, fewer than two classes, a label not a class)."""
    labels = [label_key(c) for c in classes]
    present = set(y_true.tolist())
    if not (
        labels
        and proba
        and all(p is not None for p in proba)
        and len(present) >= 2
        and present <= set(labels)
    ):
        return None
    scores = np.vstack([p for p in proba if p is not None])
    return (scores, labels, present) if scores.shape[1] == len(labels) else None


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean of 2 TP / (2 TP + FP + FN) over the classes the labels hold (scikit-learn's
    ``f1_score(labels=np.unique(y_true), average="macro")``).

    Not over every class seen, true or predicted (scikit-learn's default): a class the
    labels lack has no F1 (no row of it to find), and counted as 0 wherever it was
    predicted, a 3-class model's window of labels of two classes read F1 0.45 against 0.58
    at registration, and concept drift, while its accuracy rose. Its false predictions still
    count, as misses of the classes the rows were (FN). AUC is over the classes the labels
    hold too (``auc_columns``)."""
    seen, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    true, pred = codes[: len(y_true)], codes[len(y_true) :]
    n = len(seen)
    tp = np.bincount(true[true == pred], minlength=n)
    fp = np.bincount(pred, minlength=n) - tp
    fn = np.bincount(true, minlength=n) - tp
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n), where=denominator > 0)
    held = np.bincount(true, minlength=n) > 0
    return float(f1[held].mean()) if held.any() else 0.0


def auc_columns(labels: Sequence[str], present: set[str]) -> list[tuple[int, str]]:
    """The (column of the probabilities, class) pairs whose AUCs, each of the class against
    the rest, an AUC is the mean of.

    A model of two classes: its second class's probability, as scikit-learn's
    ``roc_auc_score`` takes a binary model's. Of more: every class the labels hold, on the
    model's own probability of it, macro-averaged, which is scikit-learn's
    ``roc_auc_score(multi_class="ovr", average="macro")`` when they hold every class. A class
    the labels lack has no AUC of its own (no positive row) and is left out of the mean; the
    others' probabilities are not rescaled to the classes present: a window of two of iris's
    three classes was once scored as a binary model of those two, which is neither the
    one-against-the-rest AUC stated nor scikit-learn's."""
    if len(labels) == 2:
        return [(1, labels[1])]
    return [(i, label) for i, label in enumerate(labels) if label in present]


def _auc(y_true: np.ndarray, scores: np.ndarray, labels: list[str], present: set[str]) -> float:
    each = [_binary_auc(y_true == label, scores[:, i]) for i, label in auc_columns(labels, present)]
    return float(np.mean(each))


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a positive row scores above a negative
    one, ties counting half (the Mann-Whitney U over the scores' ranks)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)  # tied scores share their mean rank
    positives = int(positive.sum())
    negatives = len(positive) - positives
    u = ranks[positive].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def scorable(prediction: Any) -> bool:
    """Whether a regression's errors take a labelled row of this ``prediction``: a finite
    number. A NaN (or infinite) prediction made MAE and RMSE NaN (or inf), which hid the
    model's quality: such rows are left out of the errors and counted apart, by this one
    rule, in the live window and in the reference figures alike."""
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float, np.number)):
        return False
    try:
        return math.isfinite(prediction)
    except OverflowError:  # an int past float64
        return False


def regression_metrics(truth: list[Any], predicted: list[Any]) -> dict[str, float]:
    """Mean absolute error and root mean squared error, computed so that nothing overflows.

    The errors are scaled by the largest before they are summed or squared, as BLAS's
    ``nrm2`` does: squared as they are, errors past 1.3e154 (a label of 1e200 sent by
    mistake) overflowed to an RMSE of inf, which JSON cannot carry and Prometheus shows as
    +Inf, and a thousand errors near 1e306 summed to an MAE of inf. Each error is taken as
    the difference of halves, so that not even two values near float64's limit, of opposite
    signs, overflow: a figure is infinite only where it is itself beyond float64's range
    (labels and predictions whose sizes add up to more than 1.8e308)."""
    y_true = np.asarray(truth, dtype=np.float64)
    y_pred = np.asarray(predicted, dtype=np.float64).reshape(y_true.shape)
    half_error = np.abs(y_pred / 2 - y_true / 2)
    if not half_error.size:
        return {"mae": float("nan"), "rmse": float("nan")}
    largest = float(half_error.max())
    if largest == 0.0:
        return {"mae": 0.0, "rmse": 0.0}
    scaled = half_error / largest  # in [0, 1] (NaN for a NaN prediction, as before)
    return {
        "mae": 2 * largest * float(scaled.mean()),
        "rmse": 2 * largest * float(np.sqrt(np.square(scaled).mean())),
    }
