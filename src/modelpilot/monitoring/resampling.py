"""Whether a quality window's fall below the reference is more than sampling noise.

Thirty labels drawn from a model that has not changed at all put its accuracy or F1 more
than 0.1 below the registered figure one time in ten to twenty (accuracy's standard error
there is some 0.065), so a fixed drop alone raised critical concept-drift alerts on noise.
A drop therefore counts only when the window's own bootstrap also says it is real: the
window's fall from the reference, in standard errors of ``RESAMPLES`` resamples of it (rows
drawn with replacement, as many as it holds), has a normal tail below the level of the look
(``look_level``). That is a one-sided test of "the model is as good as at
registration". The resamples give the standard error of metrics that have no formula for
one (macro F1, AUC); the share of resamples that scored at or above the reference, the
bootstrap's own p-value, cannot go below 1/401, more than the level a look's test is judged
at (0.00014 for a classifier, at the defaults), and would need tens of thousands of
resamples to resolve it. On 60 labels half right against an accuracy of 0.857 the tail is
2e-9; 42 of 60 right (0.7): 0.0034, where a binomial test gives 0.0014 (the window's own
spread, wider at 0.7 than at 0.857, errs on the side of no alarm).

An error (MAE, RMSE) is judged on its logarithm: its rise is judged as a share of the
reference, and its spread is skewed by large errors. One row of 40 with a label of 1e308 (a
client's slip; eleven more of 1e200) made MAE 2.5e306, and a resample without that row, one
in three, still 1e200; on their own scale the resamples spread so wide that the fall was one
standard error (p 0.16), on their logarithm six. The price: a Ridge regressor as good as at
registration flagged in 3 of 400 runs of 1,000 labels judged at every label, 2 of 400 on the
errors' own scale (``bench/concept_false_alarms.py``).

Every resample is a row of counts (how often each row was drawn), and every metric a
weighted version of the window's own, so the resamples cost some matrix products, not a
recomputation each: a few milliseconds for a thousand labels, on the monitor's thread, and only
for the metrics already past their threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelpilot.monitoring.looks import window_looks
from modelpilot.registry.quality import HIGHER_IS_BETTER, auc_columns, auc_scores, label_key

RESAMPLES = 400
"""Bootstrap resamples of a window: their standard deviation, the standard error, is within
some 3.5% of its limit (1 / sqrt(2 x 400)), a p-value of 0.00014 within a factor 1.5."""

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
    # The first row draws every row once: the window's own figures.
    weights = np.vstack([np.ones((1, n)), _resamples(n)])
    if task == "regression":
        figures = _regression(truth, predicted, weights)
    else:
        figures = _classification(truth, predicted, proba, classes, weights)
    found = {}
    for name, value in reference.items():
        replicates = figures.get(name)
        if replicates is not None:
            found[name] = _p_value(replicates[0], replicates[1:], value, HIGHER_IS_BETTER[name])
    return found


def _p_value(own: float, replicates: np.ndarray, reference: float, higher: bool) -> float:
    """The normal tail beyond the window's fall from ``reference``, in bootstrap standard
    errors (of an error's logarithm: see the module's docstring); at least the share of
    replicates without a figure (no positives drawn for an AUC), which prove nothing."""
    drawn = replicates[~np.isnan(replicates)]
    if np.isnan(own) or len(drawn) < 2:
        return 1.0
    if not higher:
        tiny = np.finfo(np.float64).tiny
        own, reference = math.log(max(own, tiny)), math.log(max(reference, tiny))
        drawn = np.log(np.maximum(drawn, tiny))
    fall = reference - own if higher else own - reference
    error = float(np.std(drawn, ddof=1))
    if error == 0.0:  # every resample alike: every row right, or wrong, or the same error
        tail = 0.0 if fall > 0 else 1.0
    else:
        tail = 0.5 * math.erfc(fall / error / math.sqrt(2))
    return max(tail, (len(replicates) - len(drawn)) / (len(replicates) + 1))


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
    # Macro: the mean over the classes the resample's labels hold (``quality._macro_f1``).
    labelled = weights @ is_true > 0
    held = np.count_nonzero(labelled, axis=1)
    figures["f1"] = np.where(labelled, f1, 0.0).sum(axis=1) / np.maximum(held, 1)
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


def look_level(p_value: float, tests: int, min_labels: int, max_rows: int) -> float:
    """The level each of a look's ``tests`` is judged at, in a window of at most ``max_rows``
    labels that is judged from ``min_labels`` on: ``p_value`` split over the
    tests (as the drift tests split theirs over features) and over the looks the window gets
    while it grows (``looks.window_looks``: one size for each doubling from ``min_labels``,
    30, 60, 120, 240, 480 and 960 on for the defaults, six, each counted as
    ``looks.LOOKS_PER_SIZE`` looks). The same at every size, and so stateless: a window that is
    full judges at that level as it slides."""
    return p_value / (tests * window_looks(min_labels, max_rows))
