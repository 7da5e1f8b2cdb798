"""One process's view of one served version, as workers publish it to each other (pickled
in their snapshots) and merge it: windows as counts, the rows the tests need, and totals."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from modelpilot.monitoring.performance import Labelled
from modelpilot.monitoring.window_parts import WindowPart


@dataclass(frozen=True, slots=True)
class MonitorState:
    """One process's view of one version: windows as counts, plus the rows tests need."""

    model: str
    version: int
    requests: int
    rows: int
    window_rows: int
    counts: np.ndarray
    sums: np.ndarray
    recent: np.ndarray | None
    """The window's input rows while it is small enough for the KS test, else None."""
    labelled: list[Labelled]
    labels_total: int
    classes: np.ndarray
    prediction_pivot: float | None = None
    """What the predictions' sums (the last three of ``sums``) are taken about (see
    ``PredictionBins``); None while no numeric prediction was counted (the sums are 0)."""
    prediction_pivots: tuple[float | None, ...] | None = None
    """Each column's pivot, of a prediction of several values a row (whose sums are three
    a column, the first column's first); None where a row has one value, and in states
    written before columns had sums of their own."""
    class_names: tuple[str, ...] | None = None
    """The class of each slot of the predictions' counts (in ``counts`` and ``classes``), of
    a classifier that names none, whose classes each process gives slots as it sees them
    (``SeenClasses``): merged by name. None where the slots are the same in every process."""
    window_parts: tuple[WindowPart, ...] | None = None
    """The window in parts, oldest first, where workers share it (``newest``); else None."""


def pivots_of(state: MonitorState) -> tuple[float | None, ...]:
    """Each column's pivot in ``state``: ``prediction_pivots``, or the one
    ``prediction_pivot`` of a prediction of one value a row. None where it has none: no
    number counted, or a state written before sums were taken about a pivot (a pickled
    snapshot), whose sums are of the values (about 0)."""
    pivots = getattr(state, "prediction_pivots", None)
    return pivots if pivots is not None else (getattr(state, "prediction_pivot", None),)


def totals_of(state: MonitorState) -> MonitorState:
    """``state``'s running totals alone (requests, rows, predictions by class, labels), with
    empty windows: what of a worker that died carries on in its successor."""
    return replace(
        state,
        window_rows=0,
        counts=np.zeros_like(state.counts),
        sums=np.zeros_like(state.sums),
        recent=None,
        labelled=[],
        window_parts=None,
    )
