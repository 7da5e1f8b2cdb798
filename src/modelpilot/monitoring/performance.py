"""Model quality from delayed labels: a window of labelled predictions and its metrics."""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from modelpilot.monitoring.divergence import chi_squared_homogeneity, js_distance
from modelpilot.monitoring.label_values import class_label, known_labels, regression_label
from modelpilot.monitoring.performance_report import (
    Labelled,
    PerformanceReport,
    PerformanceThresholds,
)
from modelpilot.monitoring.regression_errors import error_pairs, scored_rows
from modelpilot.monitoring.resampling import look_level, p_values
from modelpilot.registry.quality import (
    HIGHER_IS_BETTER,
    classification_metrics,
    label_key,
    regression_metrics,
)

__all__ = [
    "ERROR_FLOOR",
    "Labelled",
    "PerformanceReport",
    "PerformanceThresholds",
    "PerformanceWindow",
]

ERROR_FLOOR = 0.01
"""An error baseline (MAE, RMSE at registration) below this share of the target's scale
counts as this share of it (see ``PerformanceWindow``)."""


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
    more than a third of the time, and with many classes it stays noise at a thousand (the
    default window): 1,000 labels drawn as a 50-class model's reference labels were read
    0.097 (chi-squared p-value 0.7), and only the test keeps such a window from flagging. Of
    a few classes, at a thousand labels, any move of 0.1 is significant, and the distance
    decides, as effect sizes decide data drift from a thousand rows. The distance measures
    shares, not ratios: a rare class's relative move barely shows. A 1% class grown to 3%
    reads 0.063 (2%: 0.035, 4%: 0.084) and is not flagged, however certain the test (p-value
    4e-6 at 1,000 labels); from 1%, the line of 0.1 is crossed at some 5%. (A rule on the
    ratio alone would flag the rare classes' sampling noise of every many-class model.)

    The labels' distribution is judged against the reference labels (``reference_labels``,
    the ``--target`` column's classes) only, and only of a classifier: a regression's labels'
    distribution is not judged (a moved target shows in its inputs' drift, its predictions'
    and its errors). Against the model's own predictions on the reference data, a
    clusterer's labels (any string or number, compared with its cluster ids) read a distance
    of 1, and an outlier detector's true outlier rate was compared with the share its
    contamination set: labels that were right raised a certain concept drift.

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

    A regression of several targets takes a label of one number a target, and its MAE and
    RMSE pool every target's errors (``regression_errors``): a single number was scored
    against the first target alone, and exported as the model's error.

    A window that cannot judge (fewer than ``min_labels`` labels scored, none at all once
    they aged out, or nothing to judge them against) gives no verdict of its own: its
    report's ``concept_drift`` is then the verdict that holds (``report``'s ``held``: the
    ``concept_drift`` alert, which holds on too few labels), and its ``reason`` says so. A
    window whose labels had aged out read "no concept drift" while the alert held, and the
    Prometheus rule on its gauge resolved whenever labels came late.
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
        label_classes: Sequence[str] = (),
        several_targets: bool = False,
    ) -> None:
        self.task = task
        self.several_targets = several_targets
        """Whether a row's label is several numbers (a regression of several targets), which
        no ``--target`` column gives reference figures for."""
        self.classes = classes
        self.known_classes, self._whose = known_labels(
            list(known_classes), label_classes if task == "classification" else (), classes
        )
        """The classes a label must be one of (empty: any string or number), and what they
        are, for the message (``label_values.known_labels``)."""
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
        self._drifted: tuple[float, str] | None = None
        """When the window last judged concept drift, and why; None since it last judged
        none (or before it judged at all)."""
        self.never_judged = self._never_judged()
        """Why no label will ever be judged ("" where they will be): nothing to judge them
        against."""

    def checked(self, truth: Any, values: int = 1) -> Any:
        """``truth`` as a label of this window, of a row of ``values`` predicted values, or
        ValueError saying why it cannot be one (``label_values``).

        Checked as labels arrive: one that the metrics could not use would stop the
        version's reports for as long as it stayed in the window, and one that is no class
        of the model (7 for iris's 0, 1 and 2, or "banana" for the iris labels registered as
        its reference) would count as a wrong prediction and could raise a concept-drift
        alert on a typo. A regression takes finite JSON numbers, a list of one a target for
        several targets; a classifier one of its classes where they are known
        (``known_classes``), else any string or number."""
        if self.task == "regression":
            return regression_label(truth, values)
        return class_label(truth, self.classes, self.known_classes, self._known_keys, self._whose)

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
                if row.at < self._rows[0].at:
                    return  # older than every label of a full window: it would leave first
                self._forget()
        if key is not None:
            self._keyed[key] = row
        self._insert(row)

    def _insert(self, row: Labelled) -> None:
        """Put ``row`` in the window in time order: after the labels posted so far, as a
        rule; among them, a label read from the log late (a restore the log failed at
        start-up, tried again once labels were posted; another server's label): appended,
        it kept its older labels from ageing out behind the new ones, and had the window,
        once full, let the newest labels go first."""
        rows = self._rows
        if not rows or rows[-1].at <= row.at:
            rows.append(row)
        else:
            rows.insert(bisect.bisect_right(rows, row.at, key=attrgetter("at")), row)

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
        self, now: float | None = None, others: Sequence[Labelled] = (), held: bool = False
    ) -> PerformanceReport | None:
        """Quality over the window; ``others`` are labelled rows other processes hold;
        ``held``: whether concept drift holds where the window cannot judge (the monitor
        passes whether the version's ``concept_drift`` alert holds, which is what holds
        over a window too small to judge, over a restart, and until a version no longer
        served resolves). None for an empty window, unless concept drift holds.

        Where two processes were each posted a label for the same row (a retry or a
        correction that reached another worker), the later label counts, as it would have
        in one process."""
        now = time.time() if now is None else now
        rows = self.rows(now)
        if others:
            horizon = now - self.max_seconds
            pooled = sorted([*rows, *(r for r in others if r.at >= horizon)], key=lambda r: r.at)
            rows = _latest_by_key(pooled)[-self.max_rows :]
        if not rows and not held:
            return None
        labels = len(rows)
        if self.task == "regression":
            rows = scored_rows(rows)
        truth = [r.truth for r in rows]
        predicted = [r.predicted for r in rows]
        proba = [r.proba for r in rows]
        if self.task == "classification":
            current = classification_metrics(truth, predicted, proba, self.classes) if rows else {}
            scored = dict.fromkeys(current, (truth, predicted))
        else:
            scored = error_pairs(truth, predicted) if rows else {}
            # Once a pair: a row of one target scores MAE and RMSE on the same one.
            figures = {id(pair): regression_metrics(*pair) for pair in scored.values()}
            current = {name: figures[id(pair)][name] for name, pair in scored.items()}
        crossed = self._crossed(current) if len(rows) >= self.thresholds.min_labels else {}
        p_values = self._noise(rows, crossed, scored, proba) if crossed else {}
        return self._judge(truth, current, p_values, labels, now, held)

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
        scored: dict[str, tuple[list[Any], list[Any]]],
        proba: list[np.ndarray | None],
    ) -> dict[str, float]:
        """The bootstrap p-values of the ``crossed`` metrics (``resampling``), each on the
        (labels, predictions) it is ``scored`` on, computed again only when the window's
        labels changed."""
        key = (len(rows), rows[0].at, rows[-1].at, tuple(crossed))
        if key != self._noise_key:
            self._noise_key = key
            self._noise_p = {}
            # The metrics scored on the same pair in one bootstrap, as they always were.
            groups: dict[int, tuple[tuple[list[Any], list[Any]], dict[str, float]]] = {}
            for name, baseline in crossed.items():
                pair = scored[name]
                groups.setdefault(id(pair), (pair, {}))[1][name] = baseline
            for (truth, predicted), part in groups.values():
                found = p_values(self.task, truth, predicted, proba, self.classes, part)
                self._noise_p.update(found)
        return self._noise_p

    def _judge(
        self,
        truth: list[Any],
        current: dict[str, float],
        p_values: dict[str, float],
        labels: int,
        now: float,
        held: bool,
    ) -> PerformanceReport:
        """``p_values``: of the metrics past their threshold (none below ``min_labels``);
        ``truth``: the labels scored, of the window's ``labels``; ``held``: whether concept
        drift holds if the window cannot judge (see ``report``)."""
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
        judgeable = p_value is not None or any(name in self.baselines for name in current)
        unjudged = ""
        if not truth:
            unjudged = "no labels in the window"
        elif not enough:
            unjudged = (
                f"{len(truth)} labels in the window, fewer than the "
                f"{self.thresholds.min_labels} judged from"
            )
        elif self.never_judged:
            unjudged = self.never_judged
        elif not judgeable:
            unjudged = "none of the window's figures has one at registration to judge it by"
        drifted = bool(degraded) or shifted
        if not unjudged:
            self._drifted = (now, "; ".join(reasons)) if drifted else None
        elif held:
            drifted, reasons = True, [self._holding(unjudged)]
        elif not reasons and self.never_judged:
            reasons = [self.never_judged]
        return PerformanceReport(
            labels,
            current,
            dict(self.reference),
            degraded,
            shift,
            drifted,
            "; ".join(reasons),
            p_value,
            labels - len(truth),
            unjudged,
        )

    def _holding(self, unjudged: str) -> str:
        """Why concept drift holds over a window that cannot judge (``unjudged`` says why it
        cannot): the last drift this window judged, or (where it judged none: since a
        restart, or in a worker that replaced another) the alert's."""
        until = f"holds until the window can judge again ({unjudged})"
        if self._drifted is None:
            return f"concept drift {until}, as its alert does"
        at, why = self._drifted
        clock = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
        return f"concept drift found at {clock} {until}: {why}"

    def _never_judged(self) -> str:
        """Why this window will judge no label ("" where it will): the version has no
        reference figures (measured on labelled reference data, or stated), nor, for a
        classifier, reference labels whose distribution the labels' could move from."""
        if self.baselines or (self.task == "classification" and self.reference_labels):
            return ""
        if self.unjudged:
            return "; ".join(self.unjudged.values())
        if self.several_targets:
            # --target takes one column: registration measures no figures of several.
            return (
                "quality not judged: the version has no reference figures to judge its labels "
                "against (state one with --metadata mae=12.5: its errors pool every target's)"
            )
        stated = "accuracy=0.95" if self.task == "classification" else "mae=12.5"
        return (
            "quality not judged: the version has no reference figures to judge its labels "
            "against (register it with --reference DATA --target COLUMN, or state one with "
            f"--metadata {stated})"
        )

    def _label_shift(self, truth: list[Any]) -> tuple[float | None, float | None]:
        """How far the window's labels moved from the reference labels: their Jensen-Shannon
        distance, and the p-value of the chi-squared test that both come from one
        distribution (the reference labels are a sample too: tested as exact frequencies, a
        window about their size took their own sampling noise for a shift, as data drift's
        test did; see ``divergence.compare_categories``)."""
        if self.task != "classification" or not self.reference_labels or not truth:
            return None, None
        names = list(self.reference_labels)
        index = {name: i for i, name in enumerate(names)}
        reference = np.array([self.reference_labels[n] for n in names] + [0], dtype=np.float64)
        current = np.zeros(len(names) + 1)
        for value in truth:
            current[index.get(label_key(value), len(names))] += 1
        return js_distance(reference, current), chi_squared_homogeneity(reference, current)[1]


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


def _latest_by_key(rows: list[Labelled]) -> list[Labelled]:
    """``rows`` (in time order) without those a later row with the same key replaces."""
    last = {row.key: i for i, row in enumerate(rows) if row.key is not None}
    return [row for i, row in enumerate(rows) if row.key is None or last[row.key] == i]
