"""Whether a quality window's fall below the reference is more than sampling noise.

Thirty labels drawn from a model that has not changed at all put its accuracy or F1 more
than 0.1 below the registered figure one time in ten to twenty (accuracy's standard error
there is some 0.065), so a fixed drop alone raised critical concept-drift alerts on noise.
A drop therefore counts only when the window's own bootstrap also says it is real: of
``RESAMPLES`` resamples of the
window (rows drawn with replacement, as many as it holds), fewer than a share ``p_value``
score at or above the reference (for an error, at or below it). That is a one-sided test at
that level of "the model is as good as at registration", the same level the drift tests and
the label-shift test use.

Every resample is a row of counts (how often each row was drawn), and every metric a
weighted version of the window's own, so the resamples cost some matrix products, not a
recomputation each: a few milliseconds for a thousand labels, on the monitor's thread, and only
for the metrics already past their threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelpilot.registry.quality import HIGHER_IS_BETTER, auc_columns, auc_scores, label_key

RESAMPLES = 400
"""Bootstrap resamples of a window: a p-value's resolution is 1/401, under a quarter of the
default level of 0.01."""

SEED = 20261206
"""The resamples are drawn alike every time, so that a window judged once is judged the same
way at every evaluation until its labels change."""


def p_values(
    task: str,
    truth: Sequence[Any],
    predicted: Sequence[Any],
    proba: Sequence[np.ndarray | None],
    classes: Sequence[Any],
    reference: Mapping[str, float],
) -> dict[str, float]:
    """For each metric in ``reference``, the bootstrap p-value of the window being at least
    as good as the reference (small: it is worse than the reference, beyond noise)."""
    n = len(truth)
    if not n or not reference:
        return {}
    weights = _resamples(n)
    if task == "regression":
        figures = _regression(truth, predicted, weights)
    else:
        figures = _classification(truth, predicted, proba, classes, weights)
    found = {}
    for name, value in reference.items():
        replicates = figures.get(name)
        if replicates is None:
            continue
        # A replicate without a figure (no positives drawn for an AUC) proves nothing.
        good = replicates >= value if HIGHER_IS_BETTER[name] else replicates <= value
        good |= np.isnan(replicates)
        found[name] = float((np.count_nonzero(good) + 1) / (len(replicates) + 1))
    return found


def _resamples(n: int) -> np.ndarray:
    """``RESAMPLES`` rows of counts: how often each of ``n`` rows was drawn, n draws each."""
    rng = np.random.default_rng(SEED)
    drawn = rng.integers(0, n, size=(RESAMPLES, n))
    offsets = (np.arange(RESAMPLES) * n)[:, None]
    counts = np.bincount((drawn + offsets).ravel(), minlength=RESAMPLES * n)
    return counts.reshape(RESAMPLES, n).astype(np.float64)


def _regression(
    truth: Sequence[Any], predicted: Sequence[Any], weights: np.ndarray
) -> dict[str, np.ndarray]:
    """MAE and RMSE of every resample, scaled by the largest error as
    ``quality.regression_metrics`` is, so that errors near float64's limit do not overflow."""
    y_true = np.asarray(truth, dtype=np.float64)
    y_pred = np.asarray(predicted, dtype=np.float64).reshape(y_true.shape)
    half_error = np.abs(y_pred / 2 - y_true / 2)
    largest = float(half_error.max())
    if largest == 0.0 or not np.isfinite(largest):
        flat = np.full(len(weights), 2 * largest)
        return {"mae": flat, "rmse": flat}
    scaled = half_error / largest
    drawn = weights.sum(axis=1)
    return {
        "mae": 2 * largest * (weights @ scaled / drawn),
        "rmse": 2 * largest * np.sqrt(weights @ np.square(scaled) / drawn),
    }


def _classification(
    truth: Sequence[Any],
    predicted: Sequence[Any],
    proba: Sequence[np.ndarray | None],
    classes: Sequence[Any],
    weights: np.ndarray,
) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and AUC of every resample, as ``registry.quality`` computes them
    for the window (AUC over the classes the window's labels hold)."""
    y_true = np.array([label_key(v) for v in truth])
    y_pred = np.array([label_key(v) for v in predicted])
    correct = (y_true == y_pred).astype(np.float64)
    figures = {"accuracy": weights @ correct / weights.sum(axis=1)}
    seen = np.unique(np.concatenate([y_true, y_pred]))
    is_true = (y_true[:, None] == seen[None, :]).astype(np.float64)
    is_pred = (y_pred[:, None] == seen[None, :]).astype(np.float64)
    tp = weights @ (is_true * correct[:, None])
    # 2 TP + FP + FN is the class's count among the labels plus among the predictions.
    denominator = weights @ is_true + weights @ is_pred
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    # Macro: the mean over the classes the resample holds (as labels or as predictions).
    held = np.count_nonzero(denominator > 0, axis=1)
    figures["f1"] = f1.sum(axis=1) / np.maximum(held, 1)
    scored = auc_scores(y_true, list(proba), classes)
    if scored is not None:
        figures["auc"] = _auc(y_true, *scored, weights)
    return figures


def _auc(
    y_true: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    present: set[str],
    weights: np.ndarray,
) -> np.ndarray:
    """Each resample's AUC, one class against the rest, averaged (``quality._auc``'s)."""
    each = [
        _binary_auc(y_true == label, scores[:, i], weights)
        for i, label in auc_columns(labels, present)
    ]
    return np.asarray(np.mean(each, axis=0))


def _binary_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each resample's chance that a positive row scores above a negative one, ties counting
    half: rows sorted by score, each group of equal scores weighed against the negatives
    below it."""
    order = np.argsort(score, kind="stable")
    ordered, is_positive = score[order], positive[order]
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    positives = np.add.reduceat(w * is_positive, starts, axis=1)
    negatives = np.add.reduceat(w * ~is_positive, starts, axis=1)
    below = np.cumsum(negatives, axis=1) - negatives
    u = (positives * (below + negatives / 2)).sum(axis=1)
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, u / np.where(pairs > 0, pairs, 1), np.nan)
