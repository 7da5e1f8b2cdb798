"""Drift scores on binned counts: known values, edge cases, and the verdict rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import (
    EPSILON,
    DriftThresholds,
    chi_squared,
    js_distance,
    kl_divergence,
    ks_two_sample,
    psi,
    wasserstein,
)
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
    assert wasserstein(points, np.zeros(3), points, np.ones(3), 1.0) == 0.0


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


def test_chi_squared_with_an_unseen_category_is_finite() -> None:
    statistic, p_value = chi_squared(np.array([50, 50, 0]), np.array([45, 50, 5]))
    assert math.isfinite(statistic) and 0 <= p_value < 0.01
    _, calm = chi_squared(np.array([50, 50, 0]), np.array([48, 52, 0]))
    assert calm > 0.5


def test_chi_squared_is_scipys_goodness_of_fit() -> None:
    from scipy import stats

    reference, current = np.array([50, 30, 20, 0]), np.array([40, 35, 20, 5])
    expected = (reference + 0.5) / (reference + 0.5).sum() * current.sum()
    assert chi_squared(reference, current) == pytest.approx(
        tuple(stats.chisquare(current, expected))
    )


@pytest.fixture
def mixed_profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(10, 2, 2000),
            "constant": np.full(2000, 7.0),
            "color": rng.choice(["red", "green", "blue"], 2000, p=[0.5, 0.3, 0.2]),
        }
    )
    return ReferenceProfile.from_data(frame)


def window(n: int, seed: int, shift: float = 0.0, color: str | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if color is not None:
        colors[: n // 2] = color
    return np.column_stack([rng.normal(10 + shift, 2, n), np.full(n, 7.0), colors]).astype(object)


@pytest.mark.parametrize("n", [100, 800, 20_000])
def test_no_false_alarm_on_reference_data_at_any_size(
    mixed_profile: ReferenceProfile, n: int
) -> None:
    binning = ProfileBinning(mixed_profile)
    rows = window(n, seed=n)
    counts, sums = binning.count(rows)
    report = binning.report(counts, sums, rows, DriftThresholds())
    assert report.drifted_features == []
    for feature in report.features:
        assert all(
            math.isfinite(v) for v in (feature.psi, feature.js_distance, feature.kl_divergence)
        )
    methods = {f.name: f.method for f in report.features}
    assert methods == (
        {"x": "psi", "constant": "psi", "color": "js"}
        if n >= 1000
        else {"x": "ks", "constant": "ks", "color": "chi2"}
    )


@pytest.mark.parametrize("n", [200, 20_000])
def test_shift_and_new_categories_are_flagged(mixed_profile: ReferenceProfile, n: int) -> None:
    binning = ProfileBinning(mixed_profile)
    rows = window(n, seed=1, shift=2.0, color="purple")
    counts, sums = binning.count(rows)
    report = binning.report(counts, sums, rows, DriftThresholds())
    assert report.drifted_features == ["x", "color"]
    by_name = {f.name: f for f in report.features}
    assert by_name["x"].wasserstein == pytest.approx(1.0, abs=0.2)
    assert by_name["color"].unseen_share == pytest.approx(0.5)
    assert by_name["constant"].psi == pytest.approx(0.0, abs=1e-9)
    assert report.dataset_drift  # 2 of 3 features


def test_too_few_rows_get_no_verdict(mixed_profile: ReferenceProfile) -> None:
    binning = ProfileBinning(mixed_profile)
    rows = window(10, seed=2, shift=5.0)
    counts, sums = binning.count(rows)
    report = binning.report(counts, sums, rows, DriftThresholds())
    assert {f.method for f in report.features} == {"none"}
    assert report.drifted_features == [] and not report.dataset_drift
