"""The quality window's metrics evaluation by evaluation: what the dashboard's accuracy chart
draws."""

from __future__ import annotations

from collections import deque

QUALITY_POINTS = 300
"""Evaluations the history keeps (a stretch without labels counts as one)."""


class QualityHistory:
    """A version's quality metrics (accuracy, F1, AUC, or MAE, RMSE), one point an evaluation,
    and a gap where the quality window held no labels.

    A gap is a point with a time and no metric (``{"t": ...}``), which the chart draws as a
    break in the line, as the service charts do an interval without requests. Without it the
    chart drew one straight segment across a window emptied for 50 s, from the accuracy
    before to the one after: a steady recovery through a stretch with no labels at all (with
    a day's quality window and labels in daily batches, across hours). A stretch of empty
    evaluations is one gap, stamped at its latest, so that the chart spans up to now and the
    points before it are not pushed out of the history by hours of nothing."""

    def __init__(self, points: int = QUALITY_POINTS) -> None:
        self._points: deque[dict[str, float]] = deque(maxlen=points)

    def record(self, now: float, current: dict[str, float]) -> None:
        """Note an evaluation at ``now`` whose quality window measured ``current`` (empty:
        it held no labels)."""
        if current:
            self._points.append({"t": now, **current})
        elif self._points:  # a gap after a point; none before the first
            if len(self._points[-1]) == 1:
                self._points[-1] = {"t": now}  # the same stretch, later
            else:
                self._points.append({"t": now})

    def points(self) -> list[dict[str, float]]:
        return list(self._points)
