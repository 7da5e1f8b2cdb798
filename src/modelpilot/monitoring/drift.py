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
  from the profile's sketch of its values: ``registry.profile.quantile_sketch``; a large
  window's against a small reference, on its counts: ``divergence.ks_binned``), and beside
  it Fisher's exact test of the share of missing values (KS sees only the values present: a
  feature arriving half empty would otherwise pass it untouched); for categories,
  the chi-squared test of homogeneity (the reference is a sample too) over those both samples
  should hold at least five rows of, and Fisher's exact test of the share of rows in the
  others (rare or unseen: there chi-squared's approximation fails, and one row of a new
  category in forty read as p = 1e-52), beside which values the reference never held are
  weighed on their own, and one value recurring among those outside the named categories
  (``category_findings.recurring_test``); see ``divergence.compare_categories`` (and
  ``category_findings`` for the findings in words).

The verdict rule (``DriftThresholds``): an empty window has no scores at all (the distribution
of no rows is 0/0; its scores are NaN, null in JSON, and left out of /metrics), and below
``min_rows`` there is no verdict. A feature drifts when its shift is large enough to act on,
by an effect size (PSI for numbers, Jensen-Shannon for categories, both over bins that include
the missing one), and, where the data can tell, past chance by the feature's tests: on windows
under ``large_sample_rows`` rows, or against a reference of fewer values, the numbers' (KS and
the missing-share test) and on every window the categories' (chi-squared and the rare-category
test, whose missing values are one of their bins). A p-value answers "is there any difference",
the question is "is the difference big enough to act on": on large samples every test finds a
negligible shift "significant", and on small ones effect sizes are noisy (a window drawn as the
reference was, of 100 rows and ten bins, reads a PSI of about 0.1), so each holds back what the
other cannot tell. The tests alone once decided small windows, and a 0.3-sigma shift (PSI 0.09)
drifted in every window of 999 rows and in none of 1,000: the live verdict flapped as the window
filled (see ``_floored``).
``p_value`` is the window's, not each feature's: each of a feature's two tests runs at
``p_value`` divided by twice the number of features (Bonferroni). Otherwise the more features
a model had, the more often a window drawn as the reference was would raise an alert: with six
features tested each at 0.01 as a window grew from 30 to 1,000 rows (a verdict every 20 rows),
a fifth of such streams raised one at some point; divided, 3% did. So the live monitor
divides it by the looks its window gets as well (``DriftThresholds.looks``, from
``looks.window_looks``: 24 at the defaults), as it judges the window every round and alerts
on the first look that flags: at one look's level, 2 to 3% of windows of eight features filling
from 30 to 1,000 rows (10% judged at every row) had a feature flagged at some look, and a
model of 50 rows an hour, its window judged at every row, 1.6 times a day; split, none of
600 fills, and that model 5 times in 100 days (``bench/drift_false_alarms.py``).
``modelpilot drift``, which judges once, keeps the level of one look.
PSI >= 0.2 is the customary "significant shift" line in credit scoring (about a 0.46-sigma
shift of a normal feature's mean: on its deciles 0.45 sigma reads 0.19, 0.46 sigma 0.20). Its
noise on a window drawn as the reference was is that of the smaller of the two samples (see
``_reference_noise``): 0.012 on average for 1,000 rows against 5,000, 0.026 for 1,000 against
1,000, far under its line, so PSI decides alone where the window's rows and the reference's
values both reach ``large_sample_rows``; against a smaller reference the tests keep deciding,
on a large window read on its counts (``divergence.ks_binned``). A Jensen-Shannon distance of
0.19 is the same size of move for categories where shares move between values both samples
hold (for small moves PSI is the chi-squared divergence and Jensen-Shannon's squared is it over
8 ln 2): a flag from 50% to 72% ones reads PSI 0.20 and JS 0.19, whether it comes as 0/1 (a
number) or True/False (a category), and 14 points of share moved between two of five
categories read 0.21 and 0.19. Mass moving where the reference held none (new values, missing
ones where it missed none, numbers out of its range) is another matter: PSI weighs it by the
log of its share over ``EPSILON``, Jensen-Shannon does not, and 3.4% of the rows there read
PSI 0.2 and Jensen-Shannon 0.13; 7% reach Jensen-Shannon 0.19. The categories' tests still
count on large windows: over many categories counted in a small reference the distance's own
noise reaches its line.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from modelpilot.monitoring.category_findings import ValueGroups, category_finding
from modelpilot.monitoring.divergence import (
    EPSILON,
    fisher_exact,
    js_distance,
    ks_binned,
    ks_two_sample,
    probabilities,
    wasserstein,
)
from modelpilot.monitoring.drift_results import (
    TESTS_PER_FEATURE,
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    failed,
    missing_share,
    p_shown,
    summarize,
    unobserved,
)

__all__ = [
    "TESTS_PER_FEATURE",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "failed",
    "judge_categorical",
    "judge_numeric",
    "summarize",
]
"""The value types (``drift_results``) are named here too, where the rule that fills them is."""

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
    ``current_sample`` holds the window's values present when it is small enough for KS on
    its values, ``reference_sample`` the reference's that it is compared with, or a sketch of
    them that stands for ``reference_rows`` values (see ``divergence.ks_two_sample``).

    PSI decides alone where both the window's rows and the reference's values present (its
    bins' rows) reach ``large_sample_rows``: PSI's noise is that of the smaller sample (see
    ``_reference_noise``). Elsewhere the feature drifts when either its values (KS) or its
    share of missing values (Fisher's exact test) moved, each judged at
    ``thresholds.alpha``, and its PSI reaches ``thresholds.psi`` (see ``_floored``); the test
    with the smaller p-value is the one reported as deciding. KS reads the window's values
    where it is small and they are at hand, else its counts on the reference's bins
    (``divergence.ks_binned``: a large window against a small reference).
    """
    rows = int(current_counts.sum())
    if rows == 0:
        return unobserved(name, "numeric", reference_counts)
    located = reference_points.size
    w = wasserstein(
        reference_points,
        reference_counts[:located].astype(np.float64),
        current_points,
        current_counts[:located].astype(np.float64),
        scale,
    )
    observed = _observed(name, "numeric", reference_counts, current_counts, thresholds, w)
    values = int(reference_counts[:-1].sum())
    stage = numeric_stage(rows, values, thresholds)
    if stage == "observed":
        return observed
    if stage == "psi":
        return psi_verdict(observed, thresholds)
    binned = current_sample is None or rows >= thresholds.large_sample_rows
    if current_sample is not None and not binned:
        _, ks_p = ks_two_sample(reference_sample, current_sample, reference_rows)
    else:  # the window's values are not at hand: its counts on the reference's bins
        _, ks_p = ks_binned(reference_counts[:-1], current_counts[:-1])
    missing_p = fisher_exact(
        int(reference_counts[-1]),
        int(reference_counts.sum()),
        int(current_counts[-1]),
        rows,
    )
    return tested_verdict(observed, values, ks_p, binned, missing_p, thresholds)


def numeric_stage(rows: int, values: int, thresholds: DriftThresholds) -> str:
    """How a numeric feature's window of ``rows`` rows (at least one) is judged, against a
    reference of ``values`` values present: ``observed`` (too few rows for a verdict),
    ``psi`` (PSI alone) or ``tests`` (see ``judge_numeric``)."""
    if rows < thresholds.min_rows:
        return "observed"
    if min(rows, values) >= thresholds.large_sample_rows:
        return "psi"
    return "tests"


def psi_verdict(observed: FeatureDrift, thresholds: DriftThresholds) -> FeatureDrift:
    """A numeric feature's verdict by PSI alone (``numeric_stage`` ``psi``)."""
    return replace(
        observed,
        method="psi",
        score=observed.psi,
        threshold=thresholds.psi,
        drifted=observed.psi >= thresholds.psi,
        reason=f"PSI {_against(observed.psi, thresholds.psi)}",
    )


def tested_verdict(
    observed: FeatureDrift,
    values: int,
    ks_p: float,
    binned: bool,
    missing_p: float,
    thresholds: DriftThresholds,
) -> FeatureDrift:
    """A numeric feature's verdict by its tests (``numeric_stage`` ``tests``): the KS test's
    p-value ``ks_p`` (read on the reference's bins where ``binned``) and Fisher's of its
    missing share, ``missing_p``; ``values``: the reference's values present."""
    alpha = thresholds.alpha
    if missing_p < ks_p:
        method, deciding_p = "missing", missing_p
        finding = (
            f"missing in {observed.missing_share:.1%} of rows against "
            f"{observed.reference_missing_share:.1%} of the reference's"
            + ("" if missing_p < alpha else ", within chance")
            + f": Fisher's exact test p = {p_shown(missing_p, alpha)}"
        )
    else:
        method, deciding_p = "ks", ks_p
        values_said = "values differ from" if ks_p < alpha else "values as in"
        on_bins = " (read on the reference's bins)" if binned else ""
        finding = f"{values_said} the reference{on_bins}: KS test p = {p_shown(ks_p, alpha)}"
    tested = _tested(
        observed,
        method,
        deciding_p,
        finding,
        thresholds,
        p_value=ks_p,
        missing_p_value=missing_p,
    )
    floored = _floored(tested, "psi", "PSI", observed.psi, thresholds.psi)
    noise = _reference_noise(observed.rows, values, thresholds)
    return replace(floored, reason=f"{floored.reason}{noise}")


def _reference_noise(rows: int, values: int, thresholds: DriftThresholds) -> str:
    """Why a window of ``large_sample_rows`` rows or more is judged by its tests: the
    reference's ``values`` are fewer (else nothing to say).

    PSI's own noise, on a window drawn as the reference was, is that of both samples: about
    (bins - 1) (1/n + 1/m) over the decile bins, plus the bins below the reference's least
    value and above its greatest, which the reference holds none of by construction and a
    window about 1/(n + 1) of its rows each. So the smaller sample sets it, and a large window
    against a small reference reads its noise: windows of 5,000 rows drawn as a reference of
    50 rows was read PSI 0.39 (the median over 20 references) and drifted 18 times in 20
    when PSI decided alone from 1,000 rows, as it did whatever the reference's size (one of
    999 rows, judged by KS, did not). KS, whose p-value counts the reference's size, keeps
    deciding while the reference is small."""
    if rows < thresholds.large_sample_rows:
        return ""
    return (
        f"; tested, as the reference's {values:,} values are too few (under "
        f"{thresholds.large_sample_rows:,}) for PSI to decide alone"
    )


def judge_categorical(
    name: str,
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    unseen: int | None,
    thresholds: DriftThresholds,
    fold_rare: bool = True,
    groups: ValueGroups | None = None,
) -> FeatureDrift:
    """Scores and verdict for a categorical feature; ``unseen`` of the window's rows are new
    (None: unknown, as the reference's rarer categories were pooled into its next to last
    bin, "other", rather than that bin holding only new values); ``fold_rare``: see
    ``CategoricalBins.fold_rare``; ``groups``: its rows by hash group, for the test of
    values recurring (``category_findings.recurring_test``), whose finding, where it
    decides, takes Jensen-Shannon over the bins with the other-values bin split by group.
    Missing values are a category of their own here (the last bin), so the chi-squared test
    and Jensen-Shannon see a change in their share as they see any other.

    Jensen-Shannon decides, once the tests also find the difference past chance (on a small
    window the tests decide, once Jensen-Shannon also reaches its line: see ``_floored``): its
    noise grows with the categories and shrinks with the reference's rows, and
    a window drawn as the reference was read 0.09 to 0.12 over fifty equally frequent
    categories counted in 1,000 reference rows (two windows in three "drifted"). A real move
    of that size is far past chance on such windows: the tests hold back only the noise."""
    rows = int(current_counts.sum())
    if rows == 0:
        return unobserved(name, "categorical", reference_counts)
    observed = replace(
        _observed(name, "categorical", reference_counts, current_counts, thresholds, None),
        unseen_share=math.nan if unseen is None else unseen / rows,
    )
    if rows < thresholds.min_rows:
        return observed
    found = category_finding(
        reference_counts, current_counts, unseen is None, thresholds.alpha, fold_rare, groups
    )
    method, deciding_p, chi_p, rare_p = found.method, found.deciding_p, found.chi_p, found.rare_p
    if found.js_distance is not None:
        observed = replace(observed, js_distance=found.js_distance)
    if rows < thresholds.large_sample_rows:
        tested = _tested(
            observed, method, deciding_p, found.finding, thresholds, chi_p, rare_p_value=rare_p
        )
        js_name = "Jensen-Shannon distance"
        return _floored(tested, "js", js_name, observed.js_distance, thresholds.js_distance)
    js, line = observed.js_distance, thresholds.js_distance
    far = js >= line
    drifted = far and deciding_p < thresholds.alpha
    shown = p_shown(deciding_p, thresholds.alpha)
    level = thresholds.alpha_text(deciding_p)
    test = f"{found.test} p = {shown} {'<' if deciding_p < thresholds.alpha else '>='} {level}"
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
        reason=f"Jensen-Shannon distance {_against(js, line)}{chance}",
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
        reason=f"{finding} {'<' if drifted else '>='} {thresholds.alpha_text(deciding)}",
        p_value=p_value,
        missing_p_value=missing_p_value,
        rare_p_value=rare_p_value,
    )


def _floored(
    tested: FeatureDrift, method: str, said: str, effect: float, line: float
) -> FeatureDrift:
    """A small window's verdict by its tests (``tested``), held to the effect size that the
    large windows are judged by (``effect``, PSI or Jensen-Shannon, at ``line``): a feature
    drifts when its shift is past chance and large enough to act on.

    The tests alone flagged any shift they could tell from chance, so a shift too small to
    matter drifted while the window filled and stopped at ``large_sample_rows``, where the
    effect size takes over: 0.3 reference sigmas (PSI 0.09) in every window of 999 rows and
    none of 1,000, and the live verdict and its alert flapped with the window's size, not the
    data. Where the tests find the window past chance and the effect size falls short, the
    effect size is what decided (``method``, its score against ``line``); else the test, as
    before, its finding followed by the effect size that let it stand."""
    if not tested.drifted:
        return tested
    if effect >= line:
        return replace(tested, reason=f"{tested.reason}; {said} {_against(effect, line)}")
    return replace(
        tested,
        method=method,
        score=effect,
        threshold=line,
        drifted=False,
        reason=(
            f"{said} {_against(effect, line)}, too small a shift to act on, though past "
            f"chance: {tested.reason}"
        ),
    )


def _against(effect: float, line: float) -> str:
    """An effect size against its line, as the verdict compared them ("0.0997 < 0.1"): the
    effect with three decimals, or as many more as keep it on its side of the line as shown
    (at three, 0.0997 read "0.100 < 0.1", and 0.19996 "0.200 < 0.2")."""
    reached = effect >= line
    shown_line = f"{line:g}" if float(f"{line:g}") == line else repr(line)
    shown = repr(effect)
    for decimals in range(3, 18):
        if (float(f"{effect:.{decimals}f}") >= float(shown_line)) == reached:
            shown = f"{effect:.{decimals}f}"
            break
    return f"{shown} {'>=' if reached else '<'} {shown_line}"


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
    psi_value, js, kl = _scores(reference_counts, current_counts)
    return observed_scores(
        name,
        kind,
        int(current_counts.sum()),
        (psi_value, js, kl, wasserstein_distance),
        (missing_share(current_counts), missing_share(reference_counts)),
        thresholds,
    )


def observed_scores(
    name: str,
    kind: str,
    rows: int,
    scores: tuple[float, float, float, float | None],
    missing: tuple[float, float],
    thresholds: DriftThresholds,
) -> FeatureDrift:
    """``_observed`` of scores worked out already: PSI, Jensen-Shannon, KL and Wasserstein
    (None for categories), and the window's and the reference's missing shares."""
    psi_value, js, kl, wasserstein_distance = scores
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
        missing_share=missing[0],
        reference_missing_share=missing[1],
    )


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
