"""Drift scores on binned counts: known values (scipy's where it has them) and edge cases."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.divergence import (
    EPSILON,
    chi_squared_homogeneity,
    compare_categories,
    fisher_exact,
    js_distance,
    kl_divergence,
    ks_two_sample,
    psi,
    wasserstein,
)
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.registry.profile import ReferenceProfile


def test_identical_distributions_score_zero() -> None:
    counts = np.array([10, 20, 30, 40])
    assert psi(counts, counts * 3) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(counts, counts * 3) == pytest.approx(0.0, abs=1e-7)
    assert kl_divergence(counts, counts) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_its_definition_and_empty_bins_get_epsilon() -> None:
    reference, current = np.array([50, 50]), np.array([80, 20])
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(reference, current) == pytest.approx(expected)
    # An empty reference bin is given EPSILON, so the score is large but finite.
    empty = psi(np.array([100, 0]), np.array([50, 50]))
    assert math.isfinite(empty) and empty > 3
    assert kl_divergence(np.array([100, 0]), np.array([50, 50])) == pytest.approx(
        0.5 * math.log(0.5 / (1 / (1 + EPSILON))) + 0.5 * math.log(0.5 / (EPSILON / (1 + EPSILON)))
    )


def test_js_distance_is_bounded_and_symmetric() -> None:
    assert js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    a, b = np.array([5, 3, 2]), np.array([1, 1, 8])
    assert js_distance(a, b) == pytest.approx(js_distance(b, a))
    assert 0 < js_distance(a, b) < 1


def test_wasserstein_reads_in_reference_standard_deviations() -> None:
    points = np.array([0.0, 1.0, 2.0])
    moved = wasserstein(points, np.array([1, 1, 1.0]), points + 1.0, np.array([1, 1, 1.0]), 2.0)
    assert moved == pytest.approx(0.5)
    # No mass on one side (a column with no value present): undefined, not "nothing moved".
    assert math.isnan(wasserstein(points, np.zeros(3), points, np.ones(3), 1.0))
    assert math.isnan(wasserstein(points, np.ones(3), points, np.zeros(3), 1.0))


@pytest.mark.parametrize(
    ("sizes", "shift", "within"),
    [
        ((256, 40), 0.0, 0.05),
        ((256, 30), 0.3, 0.05),
        ((256, 200), 0.2, 0.05),
        ((256, 999), 0.1, 0.05),
        ((256, 40), 1.0, 0.2),  # far out in the tail
        ((30, 30), 0.5, 0.2),  # two small samples
    ],
)
def test_ks_statistic_is_scipys_and_its_p_value_close_to_the_exact_one(
    sizes: tuple[int, int], shift: float, within: float
) -> None:
    from scipy import stats

    rng = np.random.default_rng(sum(sizes))
    reference, current = rng.normal(size=sizes[0]), rng.normal(size=sizes[1]) + shift
    exact = stats.ks_2samp(reference, current, method="exact")
    statistic, p_value = ks_two_sample(reference, current)
    assert statistic == pytest.approx(exact.statistic)
    assert p_value == pytest.approx(exact.pvalue, rel=within)


def test_ks_reads_ties_after_every_distinct_value() -> None:
    from scipy import stats

    reference = np.repeat([0.0, 1.0, 2.0, 3.0], 25)
    current = np.repeat([1.0, 2.0], [30, 10])
    statistic, p_value = ks_two_sample(reference, current)
    assert statistic == pytest.approx(stats.ks_2samp(reference, current).statistic)
    # After 0, 1, 2, 3 the two read 0.25/0, 0.5/0.75, 0.75/1, 1/1; read between tied values
    # (one sample's before the other's) they would differ by up to 0.5.
    assert statistic == pytest.approx(0.25)
    assert 0.01 < p_value < 0.1
    assert ks_two_sample(reference, reference) == (0.0, 1.0)
    assert ks_two_sample(reference, np.empty(0)) == (0.0, 1.0)


def test_wasserstein_agrees_with_scipy_on_weighted_points() -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    for _ in range(300):
        n, m = rng.integers(1, 15, size=2)
        a, b = np.round(rng.normal(size=n), 1), np.round(rng.normal(size=m) + 0.5, 1)  # ties
        wa, wb = rng.integers(1, 5, size=n).astype(float), rng.integers(1, 5, size=m).astype(float)
        expected = stats.wasserstein_distance(a, b, wa, wb)
        assert wasserstein(a, wa, b, wb, 2.0) == pytest.approx(expected / 2.0, abs=1e-12)


def binned_wasserstein(reference: np.ndarray, current: np.ndarray) -> float | None:
    """The Wasserstein a window of ``current`` gets against a profile of ``reference``, counted
    in two chunks (sums add up as the live window's do)."""
    binning = ProfileBinning(ReferenceProfile.from_data(pd.DataFrame({"x": reference})))
    first, second = (binning.count(part.reshape(-1, 1)) for part in np.array_split(current, 2))
    counts, sums = first[0] + second[0], first[1] + second[1]
    report = binning.report(counts, sums, None, DriftThresholds())
    value = report.features[0].to_dict()["wasserstein"]
    assert value is None or isinstance(value, float)
    return value


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("shift 0.5 sd", lambda x: x + 0.5 * 3.0),
        ("shift 1 sd", lambda x: x + 3.0),
        ("scale x2", lambda x: 10 + (x - 10) * 2),
        ("scale x0.5", lambda x: 10 + (x - 10) * 0.5),
        ("no change", lambda x: x),
    ],
)
def test_binned_wasserstein_is_within_a_tenth_of_scipys_on_the_values(
    name: str, change: Callable[[np.ndarray], np.ndarray]
) -> None:
    """Bins' masses placed at their midpoints read a clean shift of 0.5 sd as 0.6-0.68 (scipy:
    0.5): the outer deciles of a bell curve lie far nearer its middle than the midpoints of
    their wide bins. At the bins' means it is within 10% of scipy (0.03 sd where nothing
    moved, which the bins cannot resolve)."""
    from scipy import stats

    rng = np.random.default_rng(11)
    reference = rng.normal(10, 3, 5000)
    current = change(rng.normal(10, 3, 5000))
    expected = stats.wasserstein_distance(reference, current) / reference.std()
    got = binned_wasserstein(reference, current)
    assert got is not None
    assert got == pytest.approx(expected, rel=0.1, abs=0.03), name


@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0])
def test_binned_wasserstein_of_whole_numbers_is_scipys(shift: float) -> None:
    """Bins of whole numbers (counts, ratings) hold a value or two each: their midpoints
    (0.5 for a bin of zeros) made identical windows differ and a shift by one read 0.8."""
    from scipy import stats

    rng = np.random.default_rng(12)
    reference = rng.poisson(3, 5000).astype(float)
    current = rng.poisson(3, 5000) + shift
    expected = stats.wasserstein_distance(reference, current) / reference.std()
    got = binned_wasserstein(reference, current)
    assert got is not None
    assert got == pytest.approx(expected, rel=0.1, abs=0.03)


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.normal(0, 1, n),
        lambda rng, n: rng.exponential(2, n),
        lambda rng, n: rng.poisson(3, n).astype(float),
    ],
    ids=["normal", "exponential", "poisson"],
)
def test_wasserstein_of_windows_drawn_from_the_reference_is_scipys_small_figure(
    draw: Callable[[np.random.Generator, int], np.ndarray],
) -> None:
    """With each bin's reference mass placed at the mean of the profile's 256 sample rows in
    it, windows drawn from the reference itself read about twice scipy's figure (0.069
    against 0.028 for a bell curve): the sample's error, not the window's. The profile now
    keeps each bin's mean in the whole reference."""
    from scipy import stats

    rng = np.random.default_rng(13)
    reference = draw(rng, 10_000)
    profile = ReferenceProfile.from_data(pd.DataFrame({"x": reference}))
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile  # the means are kept
    gaps = []
    for _ in range(4):
        current = draw(rng, 2000)
        expected = stats.wasserstein_distance(reference, current) / reference.std()
        got = binned_wasserstein(reference, current)
        assert got is not None
        gaps.append(got - expected)
    assert max(abs(g) for g in gaps) < 0.02, gaps


def test_wasserstein_without_reference_values_or_spread_is_undefined() -> None:
    """A reference column with no value present has no distribution to move from: its
    Wasserstein read 0.000, "nothing moved". So did one with no std in its profile (its
    values' squares overflowed), whose stand-in unit was then its mean."""
    rng = np.random.default_rng(13)
    assert binned_wasserstein(np.full(500, np.nan), rng.normal(size=500)) is None
    huge = rng.normal(size=500) * 1e300
    with np.errstate(over="ignore"):  # the profile's std overflows, as it did for a user
        assert binned_wasserstein(huge, huge * 2) is None
    # A std within reach gives a figure, and a constant reference (std 0) keeps its stated
    # stand-in unit, its mean.
    within_reach = binned_wasserstein(huge / 1e150, huge / 1e150)
    assert within_reach is not None and within_reach < 0.05
    assert binned_wasserstein(np.full(500, 2.0), np.full(500, 3.0)) == pytest.approx(0.5)


def test_chi_squared_with_an_unseen_category_is_finite() -> None:
    statistic, p_value = chi_squared_homogeneity(np.array([50, 50, 0]), np.array([45, 50, 25]))
    assert math.isfinite(statistic) and 0 <= p_value < 0.01
    _, calm = chi_squared_homogeneity(np.array([50, 50, 0]), np.array([48, 52, 0]))
    assert calm > 0.5


def test_chi_squared_is_scipys_test_of_homogeneity() -> None:
    from scipy import stats

    reference, current = np.array([50, 30, 20, 0]), np.array([40, 35, 20, 5])
    expected = stats.chi2_contingency(np.stack([reference, current]), correction=False)
    assert chi_squared_homogeneity(reference, current) == pytest.approx(
        (expected.statistic, expected.pvalue)
    )


def test_one_new_category_in_a_small_window_is_weighed_exactly() -> None:
    # red, green, blue, unseen, missing: the window's one new value was read by chi-squared
    # as p = 1e-52, the approximation failing on a category expected 0.005 times.
    reference = np.array([2000, 1200, 800, 0, 0])
    tests = compare_categories(reference, np.array([20, 12, 7, 1, 0]))
    chi_p, rare_p, rare = tests.chi_p, tests.rare_p, tests.rare
    assert rare.tolist() == [False, False, False, True, True]
    # Of the 4,040 rows in all, one is new: the chance it falls among the window's 40.
    assert rare_p == pytest.approx(40 / 4040)
    assert chi_p > 0.9
    # Five new values in forty are far past chance; the known categories still fit.
    rare_p = compare_categories(reference, np.array([18, 10, 7, 5, 0])).rare_p
    assert rare_p < 1e-8


def test_a_moved_share_among_known_categories_is_chi_squared() -> None:
    from scipy import stats

    reference, current = np.array([2000, 1200, 800, 0, 0]), np.array([10, 30, 20, 0, 0])
    tests = compare_categories(reference, current)
    chi_p, rare_p = tests.chi_p, tests.rare_p
    # Both samples' counts, as two rows of one table (see test_drift_categories.py).
    table = np.stack([reference[:3], current[:3]])
    assert chi_p == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert rare_p == 1.0  # no row in the rare ones, as in the reference


@pytest.mark.parametrize(
    "table",
    [
        (0, 150, 1, 150),  # a single missing value, none in a reference of the same size
        (0, 150, 75, 150),  # half the window missing
        (0, 1_000_000, 1, 150),  # one missing value against a large reference with none
        (100_000, 1_000_000, 80, 999),  # 10% against 8%
        (30, 300, 0, 500),  # the window lost the reference's missing values
        (300, 300, 40, 40),  # everything missing on both sides
        (0, 300, 0, 40),  # nothing missing anywhere
    ],
)
def test_fisher_exact_is_scipys(table: tuple[int, int, int, int]) -> None:
    from scipy import stats

    a, n, b, m = table
    expected = stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue
    assert fisher_exact(*table) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_fisher_exact_agrees_with_scipy_on_random_tables() -> None:
    from scipy import stats

    rng = np.random.default_rng(11)
    for _ in range(300):
        n, m = int(rng.integers(1, 3000)), int(rng.integers(30, 1000))
        a = int(rng.binomial(n, rng.choice([0.0, 0.01, 0.2, 0.9])))
        b = int(rng.binomial(m, rng.choice([0.0, 0.01, 0.2, 0.9])))
        expected = stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue
        assert fisher_exact(a, n, b, m) == pytest.approx(expected, rel=1e-8, abs=1e-300)
