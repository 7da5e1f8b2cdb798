"""Model quality from delayed labels: a window of labelled predictions and its metrics."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.monitoring.divergence import chi_squared_homogeneity, js_distance
from modelpilot.monitoring.resampling import p_values
from modelpilot.registry.quality import (
    HIGHER_IS_BETTER,
    as_class,
    classification_metrics,
    label_key,
    regression_metrics,
    scorable,
)

ERROR_FLOOR = 0.01
"""An error baseline (MAE, RMSE at registration) below this share of the target's scale
counts as this share of it (see ``PerformanceWindow``)."""


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
    """Jensen-Shannon distance between window and reference label frequencies that flags
    (when a chi-squared test also finds the move significant: see ``PerformanceWindow``)."""


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "unscored": self.unscored,
            "current": self.current,
            "reference": self.reference,
            "degraded": self.degraded,
            "label_shift": self.label_shift,
            "label_shift_p_value": self.label_shift_p_value,
            "concept_drift": self.concept_drift,
            "reason": self.reason,
        }


class PerformanceWindow:
    """The last labelled predictions of one version and how good they were.

    Concept drift is flagged, once the window holds ``thresholds.min_labels`` labels, when a
    score falls or an error rises past its threshold against the reference *and* the
    window's bootstrap finds the fall significant (``resampling``: at 30 labels a model as
    good as ever falls 0.1 below its accuracy or F1 one time in ten to twenty), or when the
    labels' distribution moves from the reference labels': their Jensen-Shannon distance
    reaches ``thresholds.label_shift`` *and* a chi-squared test of the window's label counts
    against the reference's (both samples) finds the move significant. The distance alone is
    noise at a few dozen labels: 40 labels drawn from iris's three equal classes reach 0.1
    more than a third of the time. At a thousand labels (the default window) the test adds
    nothing, as any move of 0.1 is significant there: the distance decides, as effect sizes
    decide data drift from a thousand rows.

    ``p_value`` (the data-drift tests' level, ``MODELPILOT_DRIFT_P_VALUE``) is the chance
    that a version as good as at registration raises concept drift while its window fills,
    not the level of each test at each look (``look_level``): a look runs up to four tests
    (accuracy, F1, AUC, the labels), and the window is judged again at every label post as it
    grows. Each test at ``p_value`` at every look, a 3-class classifier as good as at
    registration flagged in 10% of its first 1,000 labels (6% from 100 labels on), a Ridge
    regressor in 4.6%, nearly all within the first 200. The level is therefore split over
    the tests a look runs and over the sizes the window is judged at while it grows: 0.01 /
    (4 tests x 6 sizes x 3 looks a size) = 0.00014 for such a classifier, 0.00028 for a
    regression (two tests). The level is the same at every size, so the rule keeps no state.
    Measured (``bench/concept_false_alarms.py``, runs of 1,000 labels from the reference's
    distribution): the classifiers flagged in 1 of 300 runs judged every 10 labels (0.3%, of
    accuracy 0.86 and 0.90 alike; 10-15% before), 2 of 200 judged at every label (the same
    two streams, by their labels' distribution at 291 and 397 labels); the Ridge
    regressor in 3 of 400 at every label (0.75%; 4.6% before) and 2 of 400 every 10 (0.5%).
    A real fall is still caught: accuracy from 0.9 to 0.5, and a regressor's error doubled,
    at the first look (30 labels), as before; 0.9 to 0.7 within 44 labels (median, every
    label; 70 every 10), where 30 did before. After 1,000 healthy labels, 0.5 within some
    240 and 0.7 within some 480 (250 and 510 before), a doubled error within 150-160 (160):
    the full window's figure must first fall past ``max_drop``, which the test does not
    delay.

    An error (MAE, RMSE) is judged by its rise relative to the reference's, which means
    nothing where that is 0 or nearly: a model that fitted a constant target exactly (MAE 0)
    raised a critical alert on an error of 0.003 with the target at 5. The baseline is
    therefore at least ``ERROR_FLOOR`` of the target's scale (``target_scale``: the standard
    deviation of the reference labels, or their size where they are constant), an error too
    small to matter against the labels' own spread; the bootstrap tests the window against
    that baseline too. With no scale known (no reference labels or predictions, or labels
    all 0), an error whose baseline is 0 is not judged, and the report's reason says so.

    A regression's labels joined to a prediction that is no finite number (a model that
    answered NaN) are left out of its errors, and counted as ``unscored`` (by
    ``quality.scorable``, the rule the reference figures follow): one NaN made MAE and RMSE
    NaN, and hid the model's quality and concept drift, for as long as it stayed in the
    window. The threshold of ``min_labels`` counts the labels scored.
    """

    def __init__(
        self,
        task: str,
        classes: list[Any],
        reference: dict[str, float],
        reference_labels: dict[str, int] | None,
        max_rows: int,
        max_seconds: float,
        thresholds: PerformanceThresholds,
        *,
        known_classes: Sequence[Any] = (),
        p_value: float = 0.01,
        target_scale: float | None = None,
    ) -> None:
        self.task = task
        self.classes = classes
        self.known_classes = list(known_classes)
        """The model's own classes (scikit-learn's ``classes_``): a label that is none of
        them is refused. Empty when the model does not say, and then any string or number
        is taken as a class."""
        self._known_keys = {label_key(c) for c in self.known_classes}
        self.p_value = p_value
        self.reference = {k: v for k, v in reference.items() if k in HIGHER_IS_BETTER}
        self.baselines, self.unjudged = _baselines(self.reference, target_scale)
        """What each metric is judged against (an error's reference raised to its floor),
        and why the errors that are not judged are not."""
        self.reference_labels = reference_labels
        self.max_seconds = max_seconds
        self.thresholds = thresholds
        self.total = 0
        """Rows labelled since start (a label that replaces an earlier one does not count)."""
        self.max_rows = max_rows
        self._rows: deque[Labelled] = deque()
        self._keyed: dict[Any, Labelled] = {}
        self._noise_key: tuple[Any, ...] | None = None
        self._noise_p: dict[str, float] = {}

    def checked(self, truth: Any) -> Any:
        """``truth`` as a label of this window, or ValueError saying why it cannot be one.

        Checked as labels arrive: one that the metrics could not use would stop the
        version's reports for as long as it stayed in the window, and one that is no class
        of the model (7 for iris's 0, 1 and 2) would count as a wrong prediction and could
        raise a concept-drift alert on a typo. A regression takes finite JSON numbers, not
        numbers written as text ("1.5" is a slip in the client, as a label of the wrong
        kind is); a classifier one of its classes, compared as the metrics compare them (1,
        1.0 and "1" are the same class; for a classifier of booleans, 1 and 0 and "true" and
        "false" are True and False, as scikit-learn reads them), or, when the model does not
        say what its classes are, any string or number."""
        if self.task == "regression":
            if isinstance(truth, (int, float)) and not isinstance(truth, bool):
                try:
                    value = float(truth)
                except OverflowError:  # an int past float64
                    pass
                else:
                    if math.isfinite(value):
                        return value
            text = " (send a JSON number, not text)" if isinstance(truth, str) else ""
            raise ValueError(
                f"label {_shown(truth)} is not a finite number, as a regression needs{text}"
            )
        if isinstance(truth, float) and not math.isfinite(truth):
            raise ValueError(f"label {_shown(truth)} is not a class")
        if not isinstance(truth, (str, int, float)):  # bool is an int
            raise ValueError(f"label {_shown(truth)} is not a class (a string or a number)")
        value = as_class(truth, self.classes)
        if self._known_keys and label_key(value) not in self._known_keys:
            raise ValueError(
                f"label {_shown(truth)} is not one of the model's classes "
                f"({_listed(self.known_classes)}); send one of those"
            )
        return value

    def add(
        self,
        truth: Any,
        predicted: Any,
        proba: np.ndarray | None,
        at: float | None,
        key: Any = None,
        count: bool = True,
    ) -> None:
        """Take a label; one for a ``key`` labelled before (a client's retry, or a correction)
        replaces the earlier label rather than counting twice, and the same label again
        changes nothing. Without ``count`` it is not counted in ``total`` at all (a label
        restored from the log, or read from another server's, was counted when posted)."""
        earlier = self._keyed.get(key) if key is not None else None
        if (
            earlier is not None
            and _same(earlier.truth, truth)
            and _same(earlier.predicted, predicted)
        ):
            return  # read again (from the shared log): nothing changed
        row = Labelled(time.time() if at is None else at, truth, predicted, proba, key)
        if earlier is not None:
            # By identity, and rarely: a scan of at most max_rows. (``remove`` compares rows
            # field by field, and two rows alike but for their probabilities compare arrays.)
            del self._rows[next(i for i, r in enumerate(self._rows) if r is earlier)]
        else:
            self.total += count
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
        labels = len(rows)
        if self.task == "regression":
            rows = [r for r in rows if scorable(r.predicted)]
        truth = [r.truth for r in rows]
        predicted = [r.predicted for r in rows]
        proba = [r.proba for r in rows]
        if self.task == "classification":
            current = classification_metrics(truth, predicted, proba, self.classes)
        else:
            current = regression_metrics(truth, predicted) if rows else {}
        crossed = self._crossed(current) if len(rows) >= self.thresholds.min_labels else {}
        p_values = self._noise(rows, crossed, predicted, proba) if crossed else {}
        return self._judge(truth, current, p_values, labels)

    def level(self, current: dict[str, float]) -> float:
        """The level each test of a look with the metrics ``current`` is judged at: the
        window's ``p_value`` split over the tests the look runs (the metrics with a baseline,
        and the labels' distribution) and over the sizes a growing window is judged at
        (``look_level``)."""
        tests = sum(name in self.baselines for name in current)
        tests += self.task == "classification" and bool(self.reference_labels)
        return look_level(self.p_value, max(tests, 1), self.thresholds.min_labels, self.max_rows)

    def _crossed(self, current: dict[str, float]) -> dict[str, float]:
        """The metrics past their threshold against their baseline, with their baseline."""
        crossed = {}
        for name, value in current.items():
            baseline = self.baselines.get(name)
            if baseline is None:
                continue
            if HIGHER_IS_BETTER[name]:
                bad = value < baseline - self.thresholds.max_drop
            else:
                bad = value > baseline * (1 + self.thresholds.max_error_increase)
            if bad:
                crossed[name] = baseline
        return crossed

    def _noise(
        self,
        rows: list[Labelled],
        crossed: dict[str, float],
        predicted: list[Any],
        proba: list[np.ndarray | None],
    ) -> dict[str, float]:
        """The bootstrap p-values of the ``crossed`` metrics (``resampling``), computed again
        only when the window's labels changed."""
        key = (len(rows), rows[0].at, rows[-1].at, tuple(crossed))
        if key != self._noise_key:
            truth = [r.truth for r in rows]
            self._noise_key = key
            self._noise_p = p_values(self.task, truth, predicted, proba, self.classes, crossed)
        return self._noise_p

    def _judge(
        self,
        truth: list[Any],
        current: dict[str, float],
        p_values: dict[str, float],
        labels: int,
    ) -> PerformanceReport:
        """``p_values``: of the metrics past their threshold (none below ``min_labels``);
        ``truth``: the labels scored, of the window's ``labels``."""
        enough = len(truth) >= self.thresholds.min_labels
        level = self.level(current)
        degraded = []
        reasons = []
        for name, chance in p_values.items():
            if chance < level:
                degraded.append(name)
                # :g, not :f: an error of 1e200 is not written out in 200 digits.
                reference, baseline = self.reference[name], self.baselines[name]
                floor = (
                    f", judged as {baseline:.4g} ({ERROR_FLOOR:.0%} of the target's scale)"
                    if baseline != reference
                    else ""
                )
                reasons.append(
                    f"{name} {current[name]:.4g} against {reference:.4g} at "
                    f"registration{floor} (bootstrap p-value {chance:.2g})"
                )
        shift, p_value = self._label_shift(truth)
        shifted = (
            enough
            and shift is not None
            and p_value is not None
            and shift >= self.thresholds.label_shift
            and p_value < level
        )
        if shifted:
            reasons.append(
                f"label distribution moved (Jensen-Shannon distance {shift:.3f}, "
                f"chi-squared p-value {p_value:.2g})"
            )
        reasons += [self.unjudged[name] for name in current if name in self.unjudged]
        return PerformanceReport(
            labels,
            current,
            dict(self.reference),
            degraded,
            shift,
            bool(degraded) or shifted,
            "; ".join(reasons),
            p_value,
            labels - len(truth),
        )

    def _label_shift(self, truth: list[Any]) -> tuple[float | None, float | None]:
        """How far the window's labels moved from the reference labels: their Jensen-Shannon
        distance, and the p-value of the chi-squared test that both come from one
        distribution (the reference labels are a sample too: tested as exact frequencies, a
        window about their size took their own sampling noise for a shift, as data drift's
        test did; see ``divergence.compare_categories``)."""
        if self.task != "classification" or not self.reference_labels:
            return None, None
        names = list(self.reference_labels)
        index = {name: i for i, name in enumerate(names)}
        reference = np.array([self.reference_labels[n] for n in names] + [0], dtype=np.float64)
        current = np.zeros(len(names) + 1)
        for value in truth:
            current[index.get(label_key(value), len(names))] += 1
        return js_distance(reference, current), chi_squared_homogeneity(reference, current)[1]


LOOKS_PER_SIZE = 3
"""What the looks at a window while it doubles in size count as, in independent looks: a
random walk judged at every step from 30 to 1000 (six sizes) at ``a / (6 x 3)`` crossed that
level's normal bound in about ``a`` of its runs (``a`` 0.01: 1.01%, 0.005: 0.54%, 0.0025:
0.28%; judged every 10 steps 0.74%, 0.38%, 0.19%; 40,000 runs each,
``bench/concept_false_alarms.py --only walk``); at ``a / 6`` (one look a size), in 2.5 ``a``."""


def look_level(p_value: float, tests: int, min_labels: int, max_rows: int) -> float:
    """The level each of a look's ``tests`` is judged at, in a window of at most ``max_rows``
    labels that is judged from ``min_labels`` on: ``p_value`` split over the
    tests (as the drift tests split theirs over features) and over the sizes the window is
    judged at while it grows, one for each doubling from ``min_labels`` (30, 60, 120, 240,
    480 and 960 on, for the defaults: six), each counted as ``LOOKS_PER_SIZE`` looks. The same
    at every size, and so stateless: the looks at every label of a doubling are about as many
    independent looks whatever its size, and a window that is full judges at that level as
    it slides."""
    sizes = math.floor(math.log2(max_rows / min_labels)) + 1 if max_rows > min_labels else 1
    return p_value / (tests * sizes * LOOKS_PER_SIZE)


def _same(earlier: Any, truth: Any) -> bool:
    """Whether a row's label (or prediction) is ``truth`` again, of the same type (1 and True
    differ); a NaN never is."""
    return type(earlier) is type(truth) and bool(earlier == truth)


def _baselines(
    reference: dict[str, float], target_scale: float | None
) -> tuple[dict[str, float], dict[str, str]]:
    """What each metric of ``reference`` is judged against, and the errors not judged with
    why: an error's baseline is at least ``ERROR_FLOOR`` of ``target_scale``; without a
    scale, an error whose reference is 0 (or less) has no baseline a rise is relative to."""
    scale = target_scale if target_scale is not None and math.isfinite(target_scale) else 0.0
    floor = ERROR_FLOOR * abs(scale)
    baselines, unjudged = {}, {}
    for name, value in reference.items():
        if HIGHER_IS_BETTER[name]:
            baselines[name] = value
        elif not math.isfinite(value):
            unjudged[name] = f"{name} not judged: its figure at registration is {value}"
        elif max(value, floor) > 0:
            baselines[name] = max(value, floor)
        else:
            unjudged[name] = (
                f"{name} not judged: it was {value:.4g} at registration, which no rise is "
                "relative to, and no reference labels give the errors a scale"
            )
    return baselines, unjudged


def _shown(value: Any) -> str:
    """A label as the client wrote it in JSON (``true``, ``"setosa"``, ``1e+308``), cut
    short if long."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listed(classes: Sequence[Any], most: int = 20) -> str:
    """``classes`` for an error message: the first ``most`` of them, and how many more."""
    shown = ", ".join(_shown(c) for c in classes[:most])
    if len(classes) > most:
        shown += f" and {len(classes) - most} more"
    if {label_key(c) for c in classes} == {"False", "True"}:
        shown += '; 1 and 0, "true" and "false" are read as them'
    return shown


def _latest_by_key(rows: list[Labelled]) -> list[Labelled]:
    """``rows`` (in time order) without those a later row with the same key replaces."""
    last = {row.key: i for i, row in enumerate(rows) if row.key is not None}
    return [row for i, row in enumerate(rows) if row.key is None or last[row.key] == i]
