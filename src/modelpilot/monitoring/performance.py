"""Model quality from delayed labels: a window of labelled predictions and its metrics."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.monitoring.drift import js_distance
from modelpilot.registry.quality import (
    HIGHER_IS_BETTER,
    as_class,
    classification_metrics,
    label_key,
    regression_metrics,
)


@dataclass(frozen=True, slots=True)
class Labelled:
    at: float
    truth: Any
    predicted: Any
    proba: np.ndarray | None
    key: Any = None
    """What the label is for (request id and row): a second label for it replaces this one."""


@dataclass(frozen=True, slots=True)
class PerformanceThresholds:
    min_labels: int = 30
    """Fewer labels than this in the window: metrics are shown but never judged."""
    max_drop: float = 0.1
    """Scores in [0, 1] (accuracy, F1, AUC): flag a fall of more than this, absolute."""
    max_error_increase: float = 0.2
    """Errors (MAE, RMSE): flag a rise of more than this share of the reference error."""
    label_shift: float = 0.1
    """Jensen-Shannon distance between window and reference label frequencies that flags."""


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    labels: int
    current: dict[str, float]
    reference: dict[str, float]
    degraded: list[str]
    """Metrics that fell past their threshold against the reference."""
    label_shift: float | None
    concept_drift: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "current": self.current,
            "reference": self.reference,
            "degraded": self.degraded,
            "label_shift": self.label_shift,
            "concept_drift": self.concept_drift,
            "reason": self.reason,
        }


class PerformanceWindow:
    """The last labelled predictions of one version and how good they were."""

    def __init__(
        self,
        task: str,
        classes: list[Any],
        reference: dict[str, float],
        reference_labels: dict[str, int] | None,
        max_rows: int,
        max_seconds: float,
        thresholds: PerformanceThresholds,
    ) -> None:
        self.task = task
        self.classes = classes
        self.reference = {k: v for k, v in reference.items() if k in HIGHER_IS_BETTER}
        self.reference_labels = reference_labels
        self.max_seconds = max_seconds
        self.thresholds = thresholds
        self.total = 0
        """Rows labelled since start (a label that replaces an earlier one does not count)."""
        self.max_rows = max_rows
        self._rows: deque[Labelled] = deque()
        self._keyed: dict[Any, Labelled] = {}

    def checked(self, truth: Any) -> Any:
        """``truth`` as a label of this window, or ValueError saying why it cannot be one.

        Checked as labels arrive: one that the metrics could not use would stop the
        version's reports for as long as it stayed in the window."""
        if self.task == "regression":
            if isinstance(truth, (int, float, str)) and not isinstance(truth, bool):
                try:
                    value = float(truth)
                except ValueError:
                    pass
                else:
                    if math.isfinite(value):
                        return value
            raise ValueError(f"label {truth!r} is not a finite number, as a regression needs")
        if isinstance(truth, float) and not math.isfinite(truth):
            raise ValueError(f"label {truth!r} is not a class")
        if not isinstance(truth, (str, int, float)):  # bool is an int
            raise ValueError(f"label {truth!r} is not a class (a string or a number)")
        return as_class(truth, self.classes)

    def add(
        self,
        truth: Any,
        predicted: Any,
        proba: np.ndarray | None,
        at: float | None,
        key: Any = None,
    ) -> None:
        """Take a label; one for a ``key`` labelled before (a client's retry, or a correction)
        replaces the earlier label rather than counting twice."""
        row = Labelled(time.time() if at is None else at, truth, predicted, proba, key)
        earlier = self._keyed.get(key) if key is not None else None
        if earlier is not None:
            self._rows.remove(earlier)  # rare: a scan of at most max_rows
        else:
            self.total += 1
            if len(self._rows) >= self.max_rows:
                self._forget()
        if key is not None:
            self._keyed[key] = row
        self._rows.append(row)

    def rows(self, now: float | None = None) -> list[Labelled]:
        """The labelled predictions still in the window."""
        horizon = (time.time() if now is None else now) - self.max_seconds
        while self._rows and self._rows[0].at < horizon:
            self._forget()
        return list(self._rows)

    def _forget(self) -> None:
        """Let the oldest label leave the window."""
        oldest = self._rows.popleft()
        if oldest.key is not None and self._keyed.get(oldest.key) is oldest:
            del self._keyed[oldest.key]

    def report(
        self, now: float | None = None, others: Sequence[Labelled] = ()
    ) -> PerformanceReport | None:
        """Quality over the window; ``others`` are labelled rows other processes hold.

        Where two processes were each posted a label for the same row (a retry or a
        correction that reached another worker), the later label counts, as it would have
        in one process."""
        rows = self.rows(now)
        if others:
            horizon = (time.time() if now is None else now) - self.max_seconds
            pooled = sorted([*rows, *(r for r in others if r.at >= horizon)], key=lambda r: r.at)
            rows = _latest_by_key(pooled)[-self.max_rows :]
        if not rows:
            return None
        truth = [r.truth for r in rows]
        predicted = [r.predicted for r in rows]
        if self.task == "classification":
            current = classification_metrics(
                truth, predicted, [r.proba for r in rows], self.classes
            )
        else:
            current = regression_metrics(truth, predicted)
        return self._judge(truth, current)

    def _judge(self, truth: list[Any], current: dict[str, float]) -> PerformanceReport:
        enough = len(truth) >= self.thresholds.min_labels
        degraded = []
        reasons = []
        for name, value in current.items():
            reference = self.reference.get(name)
            if reference is None or not enough:
                continue
            if HIGHER_IS_BETTER[name]:
                bad = value < reference - self.thresholds.max_drop
            else:
                bad = value > reference * (1 + self.thresholds.max_error_increase)
            if bad:
                degraded.append(name)
                reasons.append(f"{name} {value:.3f} against {reference:.3f} at registration")
        shift = self._label_shift(truth)
        shifted = enough and shift is not None and shift >= self.thresholds.label_shift
        if shifted:
            reasons.append(f"label distribution moved (Jensen-Shannon distance {shift:.3f})")
        return PerformanceReport(
            len(truth),
            current,
            dict(self.reference),
            degraded,
            shift,
            bool(degraded) or shifted,
            "; ".join(reasons),
        )

    def _label_shift(self, truth: list[Any]) -> float | None:
        if self.task != "classification" or not self.reference_labels:
            return None
        names = list(self.reference_labels)
        index = {name: i for i, name in enumerate(names)}
        reference = np.array([self.reference_labels[n] for n in names] + [0], dtype=np.float64)
        current = np.zeros(len(names) + 1)
        for value in truth:
            current[index.get(label_key(value), len(names))] += 1
        return js_distance(reference, current)


def _latest_by_key(rows: list[Labelled]) -> list[Labelled]:
    """``rows`` (in time order) without those a later row with the same key replaces."""
    last = {row.key: i for i, row in enumerate(rows) if row.key is not None}
    return [row for i, row in enumerate(rows) if row.key is None or last[row.key] == i]
