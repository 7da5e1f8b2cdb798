"""Drift statistics and verdicts: one current distribution against a reference, per feature.

Everything works on binned counts (bins from the reference; see ``binning``), so a window of a
million rows costs no more to test than a window of a thousand. Scores:

- PSI (population stability index) and KL divergence, with empty bins given ``EPSILON``
  probability before the logarithm (so neither is ever infinite);
- Jensen-Shannon distance (base 2, so in [0, 1]; defined without smoothing);
- Wasserstein-1 distance between bin masses, each placed at the mean of the values that fell
  in its bin (the reference's from its sample), divided by the reference standard deviation so
  that it reads "how many reference sigmas the mass moved" (at bin midpoints it read a shift
  of half a sigma as 0.68);
- a two-sample Kolmogorov-Smirnov test against the whole reference for small windows (read
  from the profile's sketch of its values: ``registry.profile.quantile_sketch``), and beside
  it Fisher's exact test of the share of missing values (KS sees only the values present: a
  feature arriving half empty would otherwise pass it untouched); for categories,
  the chi-squared test of homogeneity (the reference is a sample too) over those both samples
  should hold at least five rows of, and Fisher's exact test of the share of rows in the
  others (rare or unseen: there chi-squared's approximation fails, and one row of a new
  category in forty read as p = 1e-52), beside which values the reference never held are
  weighed on their own; see ``divergence.compare_categories`` (and ``category_findings`` for
  the findings in words).

The verdict rule (``DriftThresholds``): an empty window has no scores at all (the distribution
of no rows is 0/0; its scores are NaN, null in JSON, and left out of /metrics), and below
``min_rows`` there is no verdict. Up to ``large_sample_rows`` a significance test decides (KS
and the missing-share test for numbers, chi-squared and the rare-category test for categories,
whose missing values are one of their bins), because effect sizes estimated from few rows are
noisy. ``p_value`` is the window's, not each feature's: each of a feature's two tests runs at
``p_value`` divided by twice the number of features (Bonferroni). Otherwise the more features
a model had, the more often a window drawn as the reference was would raise an alert: with six
features tested each at 0.01 as a window grew from 30 to 1,000 rows (a verdict every 20 rows),
a fifth of such streams raised one at some point; divided, 3% did.
From ``large_sample_rows`` on an effect size decides (PSI for numbers, Jensen-Shannon for
categories, both over bins that include the missing one), because on large samples every test
finds a negligible shift "significant": a p-value answers "is there any difference", the
question is "is the difference big enough to act on". PSI >= 0.2 is the customary
"significant shift" line in credit scoring, and its sampling noise at 1,000 rows and a dozen
bins is about 0.01; a Jensen-Shannon distance of 0.1 is a comparable move for categories,
which counts once the categories' tests (at the same level) find it past chance: over many
categories counted in a small reference the distance's own noise reaches 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from modelpilot.monitoring.category_findings import category_finding
from modelpilot.monitoring.divergence import (
    EPSILON,
    fisher_exact,
    js_distance,
    ks_two_sample,
    probabilities,
    wasserstein,
)
from modelpilot.repeated_errors import first_line

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
    js_distance: float = 0.1
    dataset_share: float = 0.5
    """A window has dataset drift when at least this share of its features drift."""
    features: int = 1
    """Features tested together (set per window, not configured). Each feature has two
    tests (values and missing share; common and rare categories), and each test runs at
    ``p_value`` divided by all of them (Bonferroni), so that ``p_value`` bounds the chance
    that a window drawn as the reference was has any feature flagged, not each test's."""

    @property
    def alpha(self) -> float:
        """The p-value under which one test of one feature finds drift."""
        return self.p_value / (TESTS_PER_FEATURE * max(self.features, 1))

    def alpha_text(self) -> str:
        """``alpha`` in words: "0.00125 (0.01 over 4 features, 2 tests each)"."""
        features = max(self.features, 1)
        tests = f"{features} feature{'s' if features > 1 else ''}, {TESTS_PER_FEATURE} tests each"
        return f"{self.alpha:.2g} ({self.p_value:g} over {tests})"


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
    the feature's tests failed: ``error``)."""
    score: float
    """Higher means more drift: the effect size, or 1 - p-value for the tests."""
    threshold: float
    """The score at which the feature counts as drifted."""
    drifted: bool
    reason: str
    """The verdict in words, with the figure that decided it."""
    psi: float
    js_distance: float
    kl_divergence: float
    wasserstein: float | None
    """Numbers only (None for categories)."""
    p_value: float | None
    """The KS test's (numbers, on windows small enough for tests) or the chi-squared test's
    (categories, on any window with a verdict: on large ones it tells Jensen-Shannon from
    noise)."""
    missing_share: float
    """Share of the window's rows in which the feature is missing."""
    reference_missing_share: float
    """Share of the reference's rows in which it is missing."""
    missing_p_value: float | None = None
    """Numbers, on windows small enough for tests: Fisher's exact test of ``missing_share``
    against ``reference_missing_share``."""
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
    failed, and this is the error in one line (see ``failed``)."""

    @property
    def deciding_p_value(self) -> float | None:
        """The p-value that decided a small window's verdict: the smaller of the feature's two
        tests' (see ``_tested``), drifted when under ``DriftThresholds.alpha``; None where an
        effect size decided, or nothing did."""
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

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, object]:
        return {
            "window_rows": self.rows,
            "verdict": self.verdict,
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
    notes = [f"the tests of {', '.join(failed)} failed"] if failed else []
    if rows == 0:
        verdict = "no rows in the window"
    elif rows < thresholds.min_rows:
        verdict = f"too few rows for a verdict: {rows} of the {thresholds.min_rows} needed"
    elif not judged:
        verdict = "no verdict" + (f" ({notes[0]})" if notes else "")
    else:
        drifted = [f.name for f in judged if f.drifted]
        named = [", ".join(drifted)] if drifted else []
        verdict = (
            f"{'dataset drift' if dataset else 'no dataset drift'}: {len(drifted)} of "
            f"{len(features)} features drifted"
        ) + (f" ({'; '.join(named + notes)})" if named or notes else "")
    return DriftReport(rows, tuple(features), dataset, share, verdict)


def _defined(value: float | None) -> float | None:
    """``value``, or None for NaN (a statistic of no rows), which JSON cannot carry."""
    return None if value is None or math.isnan(value) else value


# -- scores on binned counts --------------------------------------------------------------


def judge_numeric(
    name: str,
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    reference_points: np.ndarray,
    current_points: np.ndarray,
    scale: float,
    reference_sample: np.ndarray,
    current_sample: np.ndarray | None,
    thresholds: DriftThresholds,
    reference_rows: int | None = None,
) -> FeatureDrift:
    """Scores and verdict for a numeric feature (counts end with the missing-value bin).

    ``reference_points``/``current_points`` locate the non-missing bins for Wasserstein;
    ``current_sample`` holds the window's values present when it is small enough for KS,
    ``reference_sample`` the reference's that it is compared with, or a sketch of them that
    stands for ``reference_rows`` values (see ``divergence.ks_two_sample``).
    On such a window the feature drifts when either its values (KS) or its share of missing
    values (Fisher's exact test) moved, each judged at ``thresholds.p_value``; the test with
    the smaller p-value is the one reported as deciding.
    """
    rows = int(current_counts.sum())
    if rows == 0:
        return _unobserved(name, "numeric", reference_counts)
    located = reference_points.size
    w = wasserstein(
        reference_points,
        reference_counts[:located].astype(np.float64),
        current_points,
        current_counts[:located].astype(np.float64),
        scale,
    )
    observed = _observed(name, "numeric", reference_counts, current_counts, thresholds, w)
    if rows < thresholds.min_rows:
        return observed
    if rows < thresholds.large_sample_rows and current_sample is not None:
        _, ks_p = ks_two_sample(reference_sample, current_sample, reference_rows)
        missing_p = fisher_exact(
            int(reference_counts[-1]),
            int(reference_counts.sum()),
            int(current_counts[-1]),
            rows,
        )
        alpha = thresholds.alpha
        if missing_p < ks_p:
            method, deciding_p = "missing", missing_p
            finding = (
                f"missing in {observed.missing_share:.1%} of rows against "
                f"{observed.reference_missing_share:.1%} of the reference's"
                + ("" if missing_p < alpha else ", within chance")
                + f": Fisher's exact test p = {missing_p:.2g}"
            )
        else:
            method, deciding_p = "ks", ks_p
            values = "values differ from" if ks_p < alpha else "values as in"
            finding = f"{values} the reference: KS test p = {ks_p:.2g}"
        return _tested(
            observed,
            method,
            deciding_p,
            finding,
            thresholds,
            p_value=ks_p,
            missing_p_value=missing_p,
        )
    drifted = observed.psi >= thresholds.psi
    return replace(
        observed,
        method="psi",
        score=observed.psi,
        threshold=thresholds.psi,
        drifted=drifted,
        reason=f"PSI {observed.psi:.3f} {'>=' if drifted else '<'} {thresholds.psi:g}",
    )


def judge_categorical(
    name: str,
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    unseen: int | None,
    thresholds: DriftThresholds,
    fold_rare: bool = True,
) -> FeatureDrift:
    """Scores and verdict for a categorical feature; ``unseen`` of the window's rows are new
    (None: unknown, as the reference's rarer categories were pooled into its next to last
    bin, "other", rather than that bin holding only new values); ``fold_rare``: see
    ``CategoricalBins.fold_rare``.
    Missing values are a category of their own here (the last bin), so the chi-squared test
    and Jensen-Shannon see a change in their share as they see any other.

    On a large window Jensen-Shannon decides, once the tests also find the difference past
    chance: its noise grows with the categories and shrinks with the reference's rows, and
    a window drawn as the reference was read 0.09 to 0.12 over fifty equally frequent
    categories counted in 1,000 reference rows (two windows in three "drifted"). A real move
    of that size is far past chance on such windows: the tests hold back only the noise."""
    rows = int(current_counts.sum())
    if rows == 0:
        return _unobserved(name, "categorical", reference_counts)
    observed = replace(
        _observed(name, "categorical", reference_counts, current_counts, thresholds, None),
        unseen_share=math.nan if unseen is None else unseen / rows,
    )
    if rows < thresholds.min_rows:
        return observed
    method, deciding_p, finding, chi_p, rare_p = category_finding(
        reference_counts, current_counts, unseen is None, thresholds.alpha, fold_rare
    )
    if rows < thresholds.large_sample_rows:
        return _tested(
            observed, method, deciding_p, finding, thresholds, p_value=chi_p, rare_p_value=rare_p
        )
    js, line = observed.js_distance, thresholds.js_distance
    far = js >= line
    drifted = far and deciding_p < thresholds.alpha
    test = "chi-squared test" if method == "chi2" else "Fisher's exact test of rare categories"
    test = f"{test} p = {deciding_p:.2g} {'<' if drifted else '>='} {thresholds.alpha_text()}"
    if not far:
        chance = ""
    elif drifted:
        chance = f", past chance: {test}"
    else:  # too few reference rows for this many categories to tell the distance from noise
        chance = f", but within chance: {test}"
    return replace(
        observed,
        method="js",
        score=js,
        threshold=line,
        drifted=drifted,
        reason=f"Jensen-Shannon distance {js:.3f} {'>=' if far else '<'} {line:g}{chance}",
        p_value=chi_p,
        rare_p_value=rare_p,
    )


def _tested(
    observed: FeatureDrift,
    method: str,
    deciding: float,
    finding: str,
    thresholds: DriftThresholds,
    p_value: float,
    missing_p_value: float | None = None,
    rare_p_value: float | None = None,
) -> FeatureDrift:
    """``observed`` judged by the test of a small window that decided, of the feature's two
    the one with the smaller p-value (``deciding``); ``finding`` says what it found. The
    other p-values are kept for the report."""
    drifted = deciding < thresholds.alpha
    return replace(
        observed,
        method=method,
        score=1 - deciding,
        threshold=1 - thresholds.alpha,
        drifted=drifted,
        reason=f"{finding} {'<' if drifted else '>='} {thresholds.alpha_text()}",
        p_value=p_value,
        missing_p_value=missing_p_value,
        rare_p_value=rare_p_value,
    )


def _observed(
    name: str,
    kind: str,
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    thresholds: DriftThresholds,
    wasserstein_distance: float | None,
) -> FeatureDrift:
    """A window's scores and shares with no verdict yet (what stands when it has too few rows
    for one); the judges add theirs."""
    rows = int(current_counts.sum())
    psi_value, js, kl = _scores(reference_counts, current_counts)
    return FeatureDrift(
        name=name,
        kind=kind,
        rows=rows,
        method="none",
        score=0.0,
        threshold=0.0,
        drifted=False,
        reason=f"too few rows for a verdict: {rows} of the {thresholds.min_rows} needed",
        psi=psi_value,
        js_distance=js,
        kl_divergence=kl,
        wasserstein=wasserstein_distance,
        p_value=None,
        missing_share=_missing_share(current_counts),
        reference_missing_share=_missing_share(reference_counts),
    )


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
        _unobserved(name, kind, reference_counts),
        rows=int(current_counts.sum()),
        missing_share=_missing_share(current_counts),
        reason=f"no verdict: its tests failed ({type(error).__name__}: {said})",
        error=f"{type(error).__name__}: {said}",
    )


def _unobserved(name: str, kind: str, reference_counts: np.ndarray) -> FeatureDrift:
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
        reference_missing_share=_missing_share(reference_counts),
        unseen_share=math.nan if kind == "categorical" else 0.0,
    )


def _missing_share(counts: np.ndarray) -> float:
    """The share of the last bin, the missing values' (NaN when there are no rows)."""
    total = int(counts.sum())
    return int(counts[-1]) / total if total else math.nan


def _scores(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """PSI, Jensen-Shannon distance and KL divergence, as those functions compute them, with
    the smoothed probabilities and their log ratio worked out once for PSI and KL."""
    p, q = probabilities(reference, EPSILON), probabilities(current, EPSILON)
    log_ratio = np.log(q / p)
    return (
        float(np.dot(q - p, log_ratio)),
        js_distance(reference, current),
        float(np.dot(q, log_ratio)),
    )
