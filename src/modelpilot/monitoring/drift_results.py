"""A window's drift as values: the thresholds of the verdict rule, each feature's scores and
verdict, and the window's (the rule itself, and the scores, are ``drift``'s); and the
verdicts of features that could not be judged (no rows, failed tests)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from modelpilot.repeated_errors import first_line

VERDICT_NAMES = 10
"""How many feature names a window's verdict lists (the drifted ones, those whose tests
failed), the rest counted: with 300 drifted features it named all 300, 27 lines of a
terminal and a tall box in the HTML report's verdict card, beside a table that shows 50."""

TESTS_PER_FEATURE = 2
"""A small window's tests of one feature: KS of its values and Fisher's of its missing share
(numbers), chi-squared of its common categories and Fisher's of its rare ones."""


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """When a feature, and a whole window, counts as drifted."""

    min_rows: int = 30
    large_sample_rows: int = 1000
    p_value: float = 0.01
    psi: float = 0.2
    """The PSI a numeric feature's shift must reach to drift, on any window (on one under
    ``large_sample_rows``, or against a reference of fewer values, its tests must also find
    it past chance)."""
    js_distance: float = 0.19
    """The Jensen-Shannon distance a categorical feature's shift must reach to drift, its
    tests also finding it past chance: the size of move that PSI's line is, where shares
    move between values both samples hold (for small moves PSI is the chi-squared divergence
    and Jensen-Shannon's squared is it over 8 ln 2, so sqrt(0.2 / (8 ln 2)) = 0.19). At 0.1
    the same flag drifted from 50% to 62% ones as True/False and only at 72% as 0/1."""
    dataset_share: float = 0.5
    """A window has dataset drift when at least this share of its features drift."""
    features: int = 1
    """Features tested together (set per window, not configured). Each feature has two
    tests (values and missing share; common and rare categories), and each test runs at
    ``p_value`` divided by all of them (Bonferroni), so that ``p_value`` bounds the chance
    that a window drawn as the reference was has any feature flagged, not each test's."""
    looks: int = 1
    """The independent looks ``p_value`` is spent over besides (``looks.window_looks``): 1
    where a window is judged once (``modelpilot drift``); the live monitor's, judged every
    round while it fills and as it slides, 24 at the defaults, so that ``p_value`` bounds
    the chance that a version whose traffic is drawn as the reference was raises data drift
    at all, not at each look (at 1, one fill in 30 did, and a low-traffic model a few
    times a day)."""

    @property
    def alpha(self) -> float:
        """The p-value under which one test of one feature finds drift."""
        return self.p_value / (TESTS_PER_FEATURE * max(self.features, 1) * max(self.looks, 1))

    def alpha_text(self, p: float | None = None) -> str:
        """``alpha`` in words: "0.00125 (0.01 over 4 features, 2 tests each)", "2.6e-05 (0.01
        over 8 features, 2 tests each, and 24 looks)"; beside a p-value ``p``, with as many
        digits as ``p_shown`` gives it."""
        features = max(self.features, 1)
        tests = f"{features} feature{'s' if features > 1 else ''}, {TESTS_PER_FEATURE} tests each"
        if self.looks > 1:
            tests += f", and {self.looks} looks"
        digits = 2 if p is None else _digits(p, self.alpha)
        return f"{self.alpha:.{digits}g} ({self.p_value:g} over {tests})"


def figures_apart(value: float, line: float, places: int = 4) -> tuple[str, str]:
    """``value`` and ``line`` to ``places`` decimals, or as many more as keep them, read as
    printed, on the sides of each other that they are (``value`` at or above ``line``, or
    under it): at four, a PSI of 0.19996 read "0.2000" beside its line's "0.2000", and the
    verdict beside them "ok". NaN, and figures past 1e4, as they are."""
    reached = value >= line
    for decimals in range(places, 18):
        shown, line_shown = f"{value:.{decimals}f}", f"{line:.{decimals}f}"
        if (float(shown) >= float(line_shown)) == reached or math.isnan(value):
            return shown, line_shown
    return repr(value), repr(line)


def p_shown(p: float, alpha: float) -> str:
    """A p-value as a verdict shows it beside its level ``alpha`` (``alpha_text``): with two
    significant digits, or as many more as keep the two figures on the sides of each other
    that they are. At two, a p-value of 0.00166 under the level 0.001667 (0.01 over three
    features, two tests each) read "p = 0.0017 < 0.0017"."""
    return f"{p:.{_digits(p, alpha)}g}"


def _digits(p: float, alpha: float) -> int:
    below = p < alpha
    for digits in range(2, 18):
        if (float(f"{p:.{digits}g}") < float(f"{alpha:.{digits}g}")) == below:
            return digits
    return 17


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's scores and verdict over one window.

    A statistic the window cannot define is NaN: every score and share of an empty window, as
    a distribution of no rows is 0/0 (a uniform stand-in made an empty window look drifted).
    ``to_dict`` gives NaN as null.
    """

    name: str
    kind: str
    rows: int
    method: str
    """What decided: ``ks``, ``missing`` (the missing-share test), ``psi``, ``chi2``, ``rare``
    (the test of rare and unseen categories), ``js``, or ``none`` (too few rows, or none, or
    the feature's tests failed: ``error``). On a small window, the test unless it found the
    window past chance and the effect size (``psi``, ``js``) fell short of its line."""
    score: float
    """Higher means more drift: the effect size, or 1 - p-value for the tests."""
    threshold: float
    """The score at which the feature counts as drifted (but for a large window's
    Jensen-Shannon distance that its categories' tests find within chance)."""
    drifted: bool
    reason: str
    """The verdict in words, with the figure that decided it."""
    psi: float
    js_distance: float
    kl_divergence: float
    wasserstein: float | None
    """Numbers only (None for categories)."""
    p_value: float | None
    """The KS test's (numbers, where the tests run: see ``drift.judge_numeric``) or the
    chi-squared test's
    (categories, on any window with a verdict: on large ones it tells Jensen-Shannon from
    noise)."""
    missing_share: float
    """Share of the window's rows in which the feature is missing."""
    reference_missing_share: float
    """Share of the reference's rows in which it is missing."""
    missing_p_value: float | None = None
    """Numbers, where the tests run: Fisher's exact test of ``missing_share`` against
    ``reference_missing_share``."""
    unseen_share: float = 0.0
    """Categories: share of the window's values the reference never saw; NaN when that cannot
    be told, as the profile kept the reference's most frequent categories and pooled the rest
    (a value outside the ones it named may be one of those)."""
    rare_p_value: float | None = None
    """Categories, on any window with a verdict: Fisher's exact test of the share of rows in
    categories too rare for chi-squared (unseen ones and missing values among them), and where
    the reference named every category, of the share of values it never held on its own (see
    ``divergence.compare_categories``)."""
    error: str | None = None
    """Why the feature has no verdict where the window may have rows enough: its tests
    failed, and this is the error in one line (see ``drift.failed``)."""

    @property
    def deciding_p_value(self) -> float | None:
        """The p-value that the verdict weighed: the smaller of the feature's two tests' (see
        ``drift._tested``), drifted when under ``DriftThresholds.alpha`` and the effect size
        reaches its line; None where no test ran (a numeric feature's large window against a
        reference of as many values, too few rows)."""
        tested = [
            p for p in (self.p_value, self.missing_p_value, self.rare_p_value) if p is not None
        ]
        return min(tested) if tested else None

    def to_dict(self) -> dict[str, object]:
        """The feature as JSON; ``deciding_p_value`` is the p-value that decided, the one
        /metrics exports, which pages show as "p" (``p_value`` alone is the KS or chi-squared
        test's, even where the missing-share or rare-category test decided)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reason": self.reason,
            "psi": _defined(self.psi),
            "js_distance": _defined(self.js_distance),
            "kl_divergence": _defined(self.kl_divergence),
            "wasserstein": _defined(self.wasserstein),
            "p_value": self.p_value,
            "missing_share": _defined(self.missing_share),
            "reference_missing_share": _defined(self.reference_missing_share),
            "missing_p_value": self.missing_p_value,
            "unseen_share": _defined(self.unseen_share),
            "rare_p_value": self.rare_p_value,
            "deciding_p_value": self.deciding_p_value,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every feature of one window, and whether the window as a whole drifted."""

    rows: int
    features: tuple[FeatureDrift, ...]
    dataset_drift: bool
    drifted_share: float
    verdict: str
    """The window's verdict in words: "no rows in the window", "too few rows ...", or how many
    features drifted."""
    held: str = ""
    """Where the window cannot judge, the drift its alert holds, in words ("" where nothing
    is held): what the report's features and share then are (``holding``)."""

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def judged(self) -> bool:
        """Whether the window gave a verdict of its own: some feature was tested (not one
        of too few rows, or none). A report that is not holds its alert's drift (``holding``)
        or none."""
        return any(f.method != "none" for f in self.features)

    def to_dict(self) -> dict[str, object]:
        return {
            "window_rows": self.rows,
            "judged": self.judged,
            "verdict": f"{self.verdict}; {self.held}" if self.held else self.verdict,
            "dataset_drift": self.dataset_drift,
            "drifted_share": self.drifted_share,
            "drifted_features": self.drifted_features,
            "features": [f.to_dict() for f in self.features],
        }


def summarize(
    rows: int, features: Sequence[FeatureDrift], thresholds: DriftThresholds
) -> DriftReport:
    judged = [f for f in features if f.method != "none"]
    share = sum(f.drifted for f in judged) / len(judged) if judged else 0.0
    dataset = bool(judged) and share >= thresholds.dataset_share
    failed = [f.name for f in features if f.error is not None]
    notes = [f"the tests of {_listed(failed)} failed"] if failed else []
    if rows == 0:
        verdict = "no rows in the window"
    elif rows < thresholds.min_rows:
        verdict = f"too few rows for a verdict: {rows} of the {thresholds.min_rows} needed"
    elif not judged:
        verdict = "no verdict" + (f" ({notes[0]})" if notes else "")
    else:
        drifted = [f.name for f in judged if f.drifted]
        named = [_listed(drifted)] if drifted else []
        verdict = (
            f"{'dataset drift' if dataset else 'no dataset drift'}: {len(drifted)} of "
            f"{len(features)} features drifted"
        ) + (f" ({'; '.join(named + notes)})" if named or notes else "")
    return DriftReport(rows, tuple(features), dataset, share, verdict)


@dataclass(frozen=True, slots=True)
class HeldDrift:
    """The data drift that holds while a version's window cannot judge: that of its
    ``data_drift`` alert, which fires and has not stopped holding (``alert_rules.
    drift_held``)."""

    features: tuple[str, ...]
    """The features drifted at the verdict last judged (``Alert.drifted``)."""
    share: float
    """The share of features drifted then: the alert's value."""


def holding(report: DriftReport, held: HeldDrift, thresholds: DriftThresholds) -> DriftReport:
    """``report``, of a window that cannot judge (``DriftReport.judged`` false), holding the
    drift ``held``: its features drifted as last judged, and the share and dataset drift of
    then, each held feature's reason and the report's ``held`` saying so.

    So that the report, its gauges (``modelpilot_feature_drifted``,
    ``modelpilot_drifted_features_share``, ``modelpilot_dataset_drift``) and the alert tell
    one story, as concept drift's do: an emptied window read "not drifted", share 0, while
    the alert held at 0.33, and the Prometheus rule on the gauge resolved whenever traffic
    paused. The features keep their method (``none``: nothing was tested) and the report its
    ``verdict``, the window's own, which the alert's message gives."""
    names = set(held.features)
    until = "holds until the window can judge again"
    features = tuple(
        replace(
            f, drifted=True, reason=f"{f.reason}; drifted at the verdict last judged, which {until}"
        )
        if f.name in names
        else f
        for f in report.features
    )
    drifted = [f.name for f in features if f.drifted]
    said = f"{len(drifted)} of {len(features)} features drifted"
    if drifted:
        said += f" ({_listed(drifted)})"
    return replace(
        report,
        features=features,
        dataset_drift=held.share >= thresholds.dataset_share,
        drifted_share=held.share,
        held=f"the drift last judged {until}, as its alert does: {said}",
    )


def _listed(names: Sequence[str]) -> str:
    """The first ``VERDICT_NAMES`` of ``names``, and how many more there are; an empty name
    as '' (a Parquet column may have one: "1 of 2 features drifted ()" named none)."""
    written = [name or "''" for name in names[:VERDICT_NAMES]]
    if len(names) <= VERDICT_NAMES:
        return ", ".join(written)
    return f"{', '.join(written)} and {len(names) - VERDICT_NAMES} more"


def _defined(value: float | None) -> float | None:
    """``value``, or None for NaN (a statistic of no rows), which JSON cannot carry."""
    return None if value is None or math.isnan(value) else value


def failed(
    name: str,
    kind: str,
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    error: BaseException,
) -> FeatureDrift:
    """A feature whose scores or tests raised ``error``: no verdict and no scores (NaN), the
    error said in its reason, so that the window's other features keep theirs. (A feature
    of a served model whose tests raised took the whole report with it: the model's report
    froze at the last one that worked, with no verdict or alert while its traffic drifted.)
    """
    said = first_line(error)
    return replace(
        unobserved(name, kind, reference_counts),
        rows=int(current_counts.sum()),
        missing_share=missing_share(current_counts),
        reason=f"no verdict: its tests failed ({type(error).__name__}: {said})",
        error=f"{type(error).__name__}: {said}",
    )


def unobserved(name: str, kind: str, reference_counts: np.ndarray) -> FeatureDrift:
    """A feature over an empty window: no verdict, and no scores to show (NaN)."""
    return FeatureDrift(
        name=name,
        kind=kind,
        rows=0,
        method="none",
        score=0.0,
        threshold=0.0,
        drifted=False,
        reason="no rows in the window",
        psi=math.nan,
        js_distance=math.nan,
        kl_divergence=math.nan,
        wasserstein=math.nan if kind == "numeric" else None,
        p_value=None,
        missing_share=math.nan,
        reference_missing_share=missing_share(reference_counts),
        unseen_share=math.nan if kind == "categorical" else 0.0,
    )


def missing_share(counts: np.ndarray) -> float:
    """The share of the last bin, the missing values' (NaN when there are no rows)."""
    total = int(counts.sum())
    return int(counts[-1]) / total if total else math.nan
