"""How far apart two distributions are, and whether they differ: the scores and tests of drift.

Each takes counts per bin (the reference's and the current window's, over the same bins) or,
for the KS test, values (the reference's through a sketch of them); see ``drift`` for how
their verdicts are reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4
"""Probability given to an empty bin before PSI and KL divergence take its logarithm."""


def probabilities(counts: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
    """Counts as probabilities; with ``epsilon``, empty bins get that much (then renormalized)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.full(counts.shape, 1.0 / max(counts.size, 1))
    p = counts / total
    if epsilon > 0:
        p = np.where(p > 0, p, epsilon)
        p = p / p.sum()
    return np.asarray(p, dtype=np.float64)


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref) over bins."""
    p, q = probabilities(reference, epsilon), probabilities(current, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def kl_divergence(reference: np.ndarray, current: np.ndarray, epsilon: float = EPSILON) -> float:
    """KL(current || reference) in nats: the information lost describing today by the past."""
    p, q = probabilities(reference, epsilon), probabilities(current, epsilon)
    return float(np.sum(q * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence), base 2: 0 same, 1 disjoint."""
    p, q = probabilities(reference), probabilities(current)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    divergence = max(float(np.sum(left) + np.sum(right)) / 2, 0.0)
    return float(np.sqrt(min(divergence, 1.0)))


def wasserstein(
    reference_points: np.ndarray,
    reference_counts: np.ndarray,
    current_points: np.ndarray,
    current_counts: np.ndarray,
    scale: float,
) -> float:
    """Earth mover's distance between two weighted point sets, in units of ``scale``.

    In one dimension it is the area between the two cumulative distributions: the points of
    both sets in order, and between each and the next, how far apart the two distributions'
    shares below it are (what ``scipy.stats.wasserstein_distance`` computes, without its
    input checks, which took most of its time here: it runs for every feature of every
    served version at each evaluation).

    Binned data are points where each bin's mass lies: at each bin's mean (see ``binning``)
    a shift reads right, as where one cumulative distribution lies wholly below the other
    the distance is the difference of their means, which the bins' means add up to.

    NaN, undefined, when either set has no mass (a column with no value present) or the
    ``scale`` is NaN (a reference without a standard deviation): 0 would read as "nothing
    moved"."""
    reference_total, current_total = reference_counts.sum(), current_counts.sum()
    if reference_total <= 0 or current_total <= 0:
        return math.nan
    points = np.concatenate([reference_points, current_points])
    weights = np.concatenate([reference_counts / reference_total, -current_counts / current_total])
    order = np.argsort(points, kind="stable")
    gaps = np.diff(points[order])
    below = np.cumsum(weights[order])[:-1]
    return float(np.dot(np.abs(below), gaps) / scale)


MIN_EXPECTED = 5.0
"""Rows a category must be expected to hold, in the reference and in the window alike, for the
chi-squared test to weigh it (Cochran's rule): below that the test's approximation fails, and
one row of a category never seen became p = 1e-52."""


@dataclass(frozen=True, slots=True)
class CategoryTests:
    """What ``compare_categories`` found: the feature's two tests, and what the second pooled."""

    chi_p: float
    """The chi-squared test's, of the categories common enough for it."""
    rare_p: float
    """The rare test's: Fisher's of the pooled share, or with an unseen bin, the smaller of
    that and ``unseen_p`` times two (see ``compare_categories``)."""
    rare: np.ndarray
    """The mask of the bins in Fisher's pool."""
    unseen_p: float | None = None
    """``unseen_test``'s own p-value, None without an unseen bin or a row in it."""
    unseen_decides: bool = False
    """The unseen test gave ``rare_p``, rather than the pool's test."""


def compare_categories(
    reference: np.ndarray,
    current: np.ndarray,
    fold_into: int | None = None,
    unseen: int | None = None,
) -> CategoryTests:
    """p-values of a window's category counts against the reference's, and which are rare.

    Both are samples: the reference is counted from training rows, not known exactly, so
    the counts are compared as the two rows of one table (a test of homogeneity). Tested as
    if the reference's shares were exact (goodness of fit), a window drawn as the reference
    was drifted three times in four once it held as many rows as the reference (ten equally
    frequent categories, 300 reference rows, windows of 999), as the test took the
    reference's own sampling noise for the window's drift.

    Which categories count as rare is read from both samples' rows in each (the table's
    margins), not from the reference's alone: chosen by the reference's counts, the
    categories it held by chance a little more often than their share went to chi-squared
    and those it held a little less to the rare pool, whose reference share then ran low,
    and held-out rows of a feature of many equally frequent categories read as drifted.
    Under no drift the margins tell nothing of which sample a row came from, so a choice
    made on them keeps both tests' false alarms at their level.

    The categories both samples should hold at least ``MIN_EXPECTED`` rows of are tested
    together by chi-squared, on the rows among them. The others (rare, unseen or missing)
    are pooled, and their share of rows is tested by Fisher's exact test against the
    reference's, as a share of missing values is for numbers. With ``fold_into`` (the bin
    of a reference's pooled tail, see ``category_bins``), the rare ones of the bins before
    it join that bin instead: the profile named them for their counts, which run high, and
    in a pool of a few rare ones that bias decided (three false alarms in a hundred, of a
    thousand categories in 5,000 rows); in the tail's many rows it is lost. The ``unseen``
    bin (values the reference never held, where it named them all) is always pooled: it
    lumps many values, each as rare as the reference's rarest (which are in the pool), into
    one bin; weighed by chi-squared as one large category, the few new values a window
    drawn as the reference was held by chance drifted it nearly every time (a hundred
    categories of Zipf's law, 300 reference rows, windows of 999).

    In the pool, though, new values hid among the rare named categories when those held much
    of the reference: 999 rows of cities it never held, against 500 equally common ones in
    5,000 reference rows, were 100% of the pool's rows as the reference's were (p = 1). So
    where the bins have an unseen bin, ``unseen_test`` also weighs its rows on their own, and
    the rare test's p-value is the smaller of the two times two (Bonferroni within it, so
    that each feature still has two tests at the level ``drift`` divides). Where the pool
    holds nothing but unseen values, the pool's test is the unseen test's two-sided twin
    (against a reference share of 0) and the unseen test stands alone.
    A test with nothing to tell apart gives 1.
    """
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    rows, total = current.sum(), reference.sum()
    if rows <= 0 or total <= 0:
        return CategoryTests(1.0, 1.0, np.zeros(current.size, dtype=bool))
    rare = _rare(reference, current)
    merged = np.arange(current.size)  # each bin's bin in the tests
    if fold_into is not None and rare[:fold_into].any():
        merged[:fold_into][rare[:fold_into]] = fold_into
        reference = np.bincount(merged, weights=reference, minlength=current.size)
        current = np.bincount(merged, weights=current, minlength=current.size)
        rare = _rare(reference, current)
        rare[merged != np.arange(current.size)] = False  # emptied: no bin of their own
    if unseen is not None:
        rare[unseen] = True
    _, chi_p = chi_squared_homogeneity(reference[~rare], current[~rare])
    pool_p = 1.0
    if rare.any():
        pool_p = fisher_exact(
            int(reference[rare].sum()), int(total), int(current[rare].sum()), int(rows)
        )
    if unseen is None or current[unseen] <= 0:  # no new value: nothing for its test to weigh
        return CategoryTests(chi_p, pool_p, rare[merged])
    unseen_p = unseen_test(reference, current, unseen)
    others = rare.copy()
    others[unseen] = False
    if reference[others].sum() + current[others].sum() == 0:  # the pool holds new values alone
        return CategoryTests(chi_p, unseen_p, rare[merged], unseen_p, True)
    rare_p = min(2 * min(pool_p, unseen_p), 1.0)
    return CategoryTests(chi_p, rare_p, rare[merged], unseen_p, unseen_p < pool_p)


def unseen_test(reference: np.ndarray, current: np.ndarray, unseen: int) -> float:
    """One-sided p-value that the window holds more values the reference never held (the
    ``unseen`` bin, after the named categories) than a window drawn as the reference was.

    Under no drift, the chance that a fresh row holds a value the reference never saw is
    estimated by the share of reference rows whose category it held exactly once (Good and
    Turing: f1 of N rows; each is, to the rest of the reference, a value it never saw), so
    the window's unseen rows are tested against the reference's singletons, by Fisher's
    exact test toward more in the window. That estimate is noisier than a binomial share of
    N rows: its error's variance is (f1 + 2 f2 - f1^2 / N) / N^2 (Esty, 1983; f2 the
    categories held twice), two to three times the binomial one where many categories are
    rare. Taken as binomial, windows drawn as the reference was drifted 3 to 4% of the time at
    the level 0.01 (60 equally frequent categories, 100 reference rows, windows of 999), so
    the reference enters the test as the fewer rows whose binomial share has that variance
    (the singletons rounded in proportion): without categories held twice, all of them.

    Where every reference row held a value of its own (an id, a time or free text read as
    text, a reference of one row), the estimate is that every fresh row holds a new value
    too, and no window can hold more: p = 1, whatever share of the window is new. That is
    the conclusion, not a fallback: a feature whose values never repeated in the reference
    is expected to bring new ones, and a window of new ids is what a window drawn as the
    reference was looks like. (Esty's variance is then 0, as is the binomial one of a share
    of 1, and the effective rows below were 0 / 0: the test raised ZeroDivisionError, and
    the live monitor's report of the model froze.) Such a feature's drift shows only in its
    missing share, or as values the reference held coming back often (the pool's test).
    """
    named = reference[:unseen]
    once, twice = int(np.count_nonzero(named == 1)), int(np.count_nonzero(named == 2))
    return good_turing_unseen_p(
        once, twice, int(reference.sum()), int(current[unseen]), int(current.sum())
    )


def good_turing_unseen_p(
    once: int, twice: int, total: int, new: int, rows: int, caught: float = 1.0
) -> float:
    """``unseen_test`` from the reference's counts: its values held ``once`` and ``twice``
    in its ``total`` rows, against ``new`` rows of values it never held of the window's
    ``rows``; of the new values only ``caught`` are told new (a sketch of the reference's
    values takes the others for its own: ``registry.category_sketch``), and the window is
    expected to hold as many fewer."""
    if once == 0:  # no estimate of the unseen mass beyond none: the reference as it is
        return fisher_exact(0, total, new, rows, higher=True)
    if once == total:  # every row new to the rest of the reference: see unseen_test
        return 1.0
    binomial = once * (1 - once / total)
    effective = max(round(total * binomial / (binomial + 2 * twice)), 1)
    hits = min(round(once * caught * effective / total), effective)
    return fisher_exact(hits, effective, new, rows, higher=True)


def _rare(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The bins whose expected rows, in either sample, are under ``MIN_EXPECTED``."""
    rows, total = current.sum(), reference.sum()
    expected = (reference + current) * min(rows, total) / (rows + total)
    return np.asarray(expected < MIN_EXPECTED, dtype=bool)


def chi_squared_homogeneity(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-squared test that two samples' counts over the same categories come from
    one distribution (``scipy.stats.chi2_contingency`` on their two rows, without Yates'
    correction or its per-call machinery); categories neither sample holds are left out."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    both = reference + current
    held = both > 0
    reference, current, both = reference[held], current[held], both[held]
    n, m = reference.sum(), current.sum()
    if n <= 0 or m <= 0 or both.size < 2:
        return 0.0, 1.0
    from scipy import special  # imported when first needed: the core imports fast

    expected_reference, expected_current = both * (n / (n + m)), both * (m / (n + m))
    statistic = float(
        np.sum((reference - expected_reference) ** 2 / expected_reference)
        + np.sum((current - expected_current) ** 2 / expected_current)
    )
    return statistic, float(special.chdtrc(both.size - 1, statistic))


def ks_two_sample(
    reference: np.ndarray, current: np.ndarray, reference_rows: int | None = None
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value.

    ``reference``: the reference's values, or a sketch of them that stands for
    ``reference_rows`` values (``registry.profile.quantile_sketch``: their distribution
    function within 1/2,048), which the p-value then takes as the reference's size.

    The statistic is exact on the window's side, ties included (both distribution functions
    are read after every distinct value), and on the reference's as its sketch reads it. The
    p-value is Stephens' approximation of the Kolmogorov distribution at the effective sample
    size ``n = n1 * n2 / (n1 + n2)``: ``Q((sqrt(n) + 0.12 + 0.11 / sqrt(n)) * D)``. Against
    references of 256 to 3,000 rows, or an unbounded one (the one-sample law), and windows of
    30 to 999 rows, it came within 5% of the exact p-value from 1e-3 to 0.05 (2% on windows of
    30 rows); from 1e-5 to 1e-3 within 6% on windows of 100 rows or more and up to 18% high on
    windows of 30 (further out, 9% low to 58% high: see docs/drift.md for the table). High
    errs toward no drift; 6% low makes a window's bound of 1% 1.06%. Where both samples are
    small and of like sizes the exact law moves in coarse steps and this reads low: 25 to 31%
    for two samples of 30 rows. (It once said "within 3% down to 1e-5", which windows of 30
    rows, 17% off there, and of 100 to 300, 6% off, did not bear out.)
    ``scipy.stats.ks_2samp`` computes exact p-values for such samples, which cost the server's
    monitor thread 8-21 ms per model of twenty features every evaluation, holding the
    interpreter lock away from serving; this costs a tenth of that.
    """
    if reference.size == 0 or current.size == 0:
        return 0.0, 1.0
    reference, current = np.sort(reference), np.sort(current)
    values = np.concatenate([reference, current])
    gaps = np.searchsorted(reference, values, "right") / reference.size
    gaps -= np.searchsorted(current, values, "right") / current.size
    statistic = float(np.abs(gaps).max())
    rows = reference.size if reference_rows is None else reference_rows
    return statistic, _kolmogorov_p(statistic, rows, current.size)


def ks_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov test of two samples' counts over the same ordered
    bins (of values present: a numeric feature's, without its missing bin): the statistic
    read at the bins' edges alone, the p-value as ``ks_two_sample``'s for samples of those
    sizes.

    For a window whose values are not at hand (a large one: only its counts are kept). Read
    at fewer points, the statistic is at most the one over every value, so its p-value is
    conservative: under no drift it is past a level no more often than the test on the
    values, and it sees every row of the window, where the window's last rows would miss a
    shift in its older ones."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    rows, total = current.sum(), reference.sum()
    if rows <= 0 or total <= 0:
        return 0.0, 1.0
    gaps = np.cumsum(reference) / total - np.cumsum(current) / rows
    statistic = float(np.abs(gaps).max())
    return statistic, _kolmogorov_p(statistic, int(total), int(rows))


def _kolmogorov_p(statistic: float, reference_rows: int, current_rows: int) -> float:
    """Stephens' approximation of the two-sample KS p-value (see ``ks_two_sample``)."""
    from scipy import special  # imported when first needed: the core imports fast

    root = np.sqrt(reference_rows * current_rows / (reference_rows + current_rows))
    return float(special.kolmogorov((root + 0.12 + 0.11 / root) * statistic))


def fisher_exact(
    reference_hits: int,
    reference_rows: int,
    current_hits: int,
    current_rows: int,
    higher: bool = False,
) -> float:
    """Two-sided p-value of Fisher's exact test: do the current rows have the reference's share
    of hits (here: of missing values)? With ``higher``, one-sided: the chance of as many hits
    in the current rows or more (``scipy.stats.fisher_exact``'s "greater", current row first).

    Fisher's rather than a z-test of two proportions because the share tested is usually
    near zero (a reference with no missing values at all), where the normal approximation
    fails: one missing value in 150 rows against none in 150 reads as z = 1 (p = 0.32) where
    the exact answer is p = 1. Rather than a binomial test against the reference's share,
    because that share is itself estimated: against a reference with none, a binomial test
    calls a single missing value impossible (p = 0).

    Given both samples' sizes and the hits in all, the current sample's hits are
    hypergeometric; the p-value sums the probability of every count no more likely than the
    one observed (as ``scipy.stats.fisher_exact`` does, ties within a relative 1e-7). The
    probabilities come from the ratio of each to the next, over at most ``current_rows + 1``
    counts (fewer than ``large_sample_rows``, as the test runs on small windows), which costs
    a few NumPy calls rather than scipy's per-call machinery.
    """
    hits = reference_hits + current_hits
    misses = reference_rows + current_rows - hits
    low, high = max(0, current_rows - misses), min(current_rows, hits)
    if low == high:  # one possible count (no hits at all, say): nothing to tell apart
        return 1.0
    # P(k + 1) / P(k) of the hypergeometric distribution, for k from low to high - 1.
    k = np.arange(low, high, dtype=np.float64)
    ratios = (hits - k) * (current_rows - k) / ((k + 1) * (misses - current_rows + k + 1))
    log_probability = np.concatenate([[0.0], np.cumsum(np.log(ratios))])
    probability = np.exp(log_probability - log_probability.max())
    if higher:
        return float(min(probability[current_hits - low :].sum() / probability.sum(), 1.0))
    observed = probability[current_hits - low]
    as_unlikely = probability[probability <= observed * (1 + 1e-7)].sum()
    return float(min(as_unlikely / probability.sum(), 1.0))


# -- verdicts -----------------------------------------------------------------------------
