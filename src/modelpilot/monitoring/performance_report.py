"""What a quality window reports, and the thresholds it judges by (see ``performance``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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
    """Errors (MAE, RMSE): flag a rise of more than this share of the reference error (of
    ``ERROR_FLOOR`` of the target's scale, where the reference error is smaller)."""
    label_shift: float = 0.1
    """Jensen-Shannon distance between a classifier's window and reference label frequencies
    that flags (when a chi-squared test also finds the move significant: see
    ``PerformanceWindow``)."""


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    labels: int
    current: dict[str, float]
    reference: dict[str, float]
    degraded: list[str]
    """Metrics that fell past their threshold against the reference."""
    label_shift: float | None
    """Jensen-Shannon distance between the window's labels and the reference labels."""
    concept_drift: bool
    reason: str
    label_shift_p_value: float | None = None
    """The chi-squared test's p-value for the window's labels against the reference labels."""
    unscored: int = 0
    """Labels (in ``labels``) left out of a regression's metrics: their prediction was no
    finite number (NaN, infinite, missing)."""
    unjudged: str = ""
    """Why the window gave no verdict ("" where it did): too few labels scored, or nothing
    to judge them against. ``concept_drift`` is then the verdict that holds meanwhile (see
    ``PerformanceWindow.report``), and ``reason`` says so."""

    @property
    def judged(self) -> bool:
        """Whether ``concept_drift`` is this window's verdict, not one held from before."""
        return not self.unjudged

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "unscored": self.unscored,
            "judged": self.judged,
            "current": self.current,
            "reference": self.reference,
            "degraded": self.degraded,
            "label_shift": self.label_shift,
            "label_shift_p_value": self.label_shift_p_value,
            "concept_drift": self.concept_drift,
            "reason": self.reason,
        }
