"""A regression window's errors: which labelled rows are scored, and on what each error
metric is computed, a row of several targets pooling its targets' errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from modelpilot.registry.quality import scorable


class LabelledRow(Protocol):
    @property
    def truth(self) -> Any: ...

    @property
    def predicted(self) -> Any: ...


Row = TypeVar("Row", bound=LabelledRow)


def width(value: Any) -> int:
    """How many values a row's label or prediction holds: a tuple's length (a row of several
    targets), else 1."""
    return len(value) if isinstance(value, tuple) else 1


def scored_rows(rows: Sequence[Row]) -> list[Row]:
    """The ``rows`` a regression's errors take: those whose prediction is finite numbers
    (``quality.scorable``, each of a row of several targets), of as many values as the
    newest row's, with a label of as many (a version's rows all have one width; a model
    whose output is of unknown width may answer others, which cannot be pooled with them)."""
    if not rows:
        return []
    values = width(rows[-1].predicted)
    return [
        row
        for row in rows
        if width(row.predicted) == values == width(row.truth) and _finite(row.predicted)
    ]


def _finite(predicted: Any) -> bool:
    if isinstance(predicted, tuple):
        return all(scorable(value) for value in predicted)
    return scorable(predicted)


def error_pairs(truth: list[Any], predicted: list[Any]) -> dict[str, tuple[list[Any], list[Any]]]:
    """The (labels, predictions) that MAE and RMSE are computed on (``quality.
    regression_metrics``) and resampled on (``resampling.p_values``): the rows' own, where a
    row is one value; for rows of several targets, each row's mean absolute error (for MAE)
    and root mean squared error (for RMSE) over its targets, beside a label of 0.

    Their MAE and RMSE are then those of every target's errors pooled, scikit-learn's
    ``mean_absolute_error`` and the root of ``mean_squared_error`` with
    ``multioutput="uniform_average"``, and a resample draws whole rows. Scaled by each row's
    largest error, as ``regression_metrics`` is, so that nothing overflows."""
    if not truth or width(truth[0]) == 1:
        return dict.fromkeys(("mae", "rmse"), (truth, predicted))
    half = np.abs(np.asarray(predicted, np.float64) / 2 - np.asarray(truth, np.float64) / 2)
    largest = half.max(axis=1)
    scaled = half / np.where(largest > 0, largest, 1.0)[:, None]
    absolute = 2 * largest * scaled.mean(axis=1)
    root = 2 * largest * np.sqrt(np.square(scaled).mean(axis=1))
    zeros = [0.0] * len(truth)
    return {"mae": (zeros, absolute.tolist()), "rmse": (zeros, root.tolist())}
