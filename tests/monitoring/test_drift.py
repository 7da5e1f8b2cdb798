"""Drift verdicts on windows: the rule that does not cry wolf, shifts and new categories
flagged, missing values, and windows too small or empty."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.registry.profile import ReferenceProfile


@pytest.fixture
def twenty_features() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=2000) for i in range(20)})
    frame["color"] = rng.choice(["red", "green", "blue", "grey"], 2000, p=[0.4, 0.3, 0.2, 0.1])
    return ReferenceProfile.from_data(frame)


def test_p_value_bounds_a_whole_windows_false_alarms(twenty_features: ReferenceProfile) -> None:
    """Windows drawn as the reference was: at p < 0.01 per window, at most 1% with any feature
    flagged. Each test of each feature at 0.01, 21 features flagged a fifth of them."""
    binning = ProfileBinning(twenty_features)
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(300):
        rows = np.column_stack(
            [
                *(rng.normal(size=200) for _ in range(20)),
                rng.choice(["red", "green", "blue", "grey"], 200, p=[0.4, 0.3, 0.2, 0.1]),
            ]
        ).astype(object)
        counts, sums = binning.count(rows)
        report = binning.report(counts, sums, rows, DriftThresholds())
        alarms += bool(report.drifted_features)
    assert report.features[0].threshold == pytest.approx(1 - 0.01 / (2 * 21))  # 2 tests each
    assert alarms <= 9  # of 300: expected at most 3


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


@pytest.mark.parametrize("n", [1, 5, 29])
def test_a_handful_of_rows_gets_scores_but_no_verdict(
    mixed_profile: ReferenceProfile, n: int
) -> None:
    binning = ProfileBinning(mixed_profile)
    rows = window(n, seed=n, shift=5.0, color="purple")
    counts, sums = binning.count(rows)
    report = binning.report(counts, sums, rows, DriftThresholds())
    assert {f.method for f in report.features} == {"none"}
    assert report.drifted_features == [] and not report.dataset_drift
    assert report.verdict == f"too few rows for a verdict: {n} of the 30 needed"
    assert all(f.rows == n and math.isfinite(f.psi) for f in report.features)


def test_an_empty_window_has_no_scores_and_says_so(mixed_profile: ReferenceProfile) -> None:
    """A window whose rows all expired used to be scored as if its distribution were uniform
    (PSI 1.7-1.9 on iris, more than while traffic flowed)."""
    binning = ProfileBinning(mixed_profile)
    counts, sums = np.zeros(binning.size, dtype=np.int64), np.zeros(binning.sums_size)
    report = binning.report(counts, sums, None, DriftThresholds())
    for feature in report.features:
        scores = (feature.psi, feature.js_distance, feature.kl_divergence)
        assert all(math.isnan(v) for v in scores), feature
        assert feature.method == "none" and not feature.drifted
        assert feature.reason == "no rows in the window"
        assert math.isnan(feature.missing_share)
        data = feature.to_dict()
        for key in ("psi", "js_distance", "kl_divergence", "wasserstein", "missing_share"):
            assert data[key] is None, key
        assert data["reference_missing_share"] == 0.0
    assert report.drifted_features == [] and not report.dataset_drift
    assert report.drifted_share == 0.0
    assert report.rows == 0 and report.verdict == "no rows in the window"
    assert report.to_dict()["verdict"] == "no rows in the window"


def with_missing(rows: np.ndarray, column: int, every: int) -> np.ndarray:
    rows = rows.copy()
    rows[::every, column] = np.nan
    return rows


def test_a_feature_arriving_half_missing_drifts_on_a_small_window(
    mixed_profile: ReferenceProfile,
) -> None:
    """The KS test sees only the values present (here p = 0.99): the missing share is tested
    on its own, and shown beside the reference's."""
    binning = ProfileBinning(mixed_profile)
    rows = with_missing(window(150, seed=3), column=0, every=2)
    counts, sums = binning.count(rows)
    report = binning.report(counts, sums, rows, DriftThresholds())
    assert report.drifted_features == ["x"]
    x = report.features[0]
    assert x.method == "missing" and x.drifted
    assert x.missing_share == 0.5 and x.reference_missing_share == 0.0
    assert x.missing_p_value is not None and x.missing_p_value < 1e-10
    assert x.p_value is not None and x.p_value > 0.1  # the KS test's, which could not see it
    assert x.score == pytest.approx(1 - x.missing_p_value) and x.score >= x.threshold
    assert x.reason.startswith("missing in 50.0% of rows against 0.0% of the reference's")
    data = x.to_dict()
    assert (data["missing_share"], data["reference_missing_share"]) == (0.5, 0.0)
    assert data["missing_p_value"] == x.missing_p_value
    others = {f.name: f for f in report.features[1:]}
    assert others["constant"].method == "ks" and others["constant"].missing_share == 0.0


@pytest.fixture
def sometimes_missing_profile() -> ReferenceProfile:
    rng = np.random.default_rng(5)
    x = rng.normal(size=2000)
    x[rng.choice(2000, 200, replace=False)] = np.nan  # a tenth missing
    return ReferenceProfile.from_data(pd.DataFrame({"x": x}))


def sometimes_missing(n: int, share: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < share] = np.nan
    return x.reshape(-1, 1)


@pytest.mark.parametrize("n", [30, 100, 500, 999])
def test_missing_values_at_the_reference_rate_seldom_raise_an_alarm(
    sometimes_missing_profile: ReferenceProfile, n: int
) -> None:
    """Two tests at p < 0.01 each: at most about 2% false alarms (Fisher's test, exact and
    conservative, adds less than its 1%)."""
    binning = ProfileBinning(sometimes_missing_profile)
    alarms, missing_alarms = 0, 0
    for seed in range(200):
        rows = sometimes_missing(n, 0.1, seed)
        counts, sums = binning.count(rows)
        (x,) = binning.report(counts, sums, rows, DriftThresholds()).features
        assert x.reference_missing_share == 0.1
        assert x.missing_p_value is not None
        alarms += x.drifted
        missing_alarms += x.missing_p_value < 0.01
    assert alarms <= 8 and missing_alarms <= 4  # of 200; expected at most 4 and 2


@pytest.mark.parametrize(("n", "share"), [(300, 0.0), (300, 0.3), (60, 0.6)])
def test_a_moved_missing_share_drifts_either_way(
    sometimes_missing_profile: ReferenceProfile, n: int, share: float
) -> None:
    """Values stopping to be missing (a pipeline that now fills them in) is drift too."""
    binning = ProfileBinning(sometimes_missing_profile)
    rows = sometimes_missing(n, share, seed=1)
    counts, sums = binning.count(rows)
    (x,) = binning.report(counts, sums, rows, DriftThresholds()).features
    assert x.drifted and x.method == "missing", x
    assert x.missing_share == pytest.approx(share, abs=0.1)


def test_large_windows_see_a_moved_missing_share_through_psi(
    mixed_profile: ReferenceProfile,
) -> None:
    """From large_sample_rows on the missing values' bin counts in PSI like any other: half
    the rows missing where the reference had none is far past the line; a few percent is a
    small effect, and stays under it."""
    binning = ProfileBinning(mixed_profile)
    for every, drifted in ((2, True), (50, False)):
        rows = with_missing(window(20_000, seed=4), column=0, every=every)
        counts, sums = binning.count(rows)
        x = binning.report(counts, sums, rows, DriftThresholds()).features[0]
        assert x.method == "psi" and x.drifted is drifted, x
        assert x.missing_share == pytest.approx(1 / every)
        assert x.missing_p_value is None


def test_categories_test_their_missing_values_as_a_category(
    mixed_profile: ReferenceProfile,
) -> None:
    binning = ProfileBinning(mixed_profile)
    rows = window(150, seed=6)
    rows[::2, 2] = None
    counts, sums = binning.count(rows)
    color = binning.report(counts, sums, rows, DriftThresholds()).features[2]
    # The reference has none missing, but the two samples hold 75 between them: a bin that
    # chi-squared weighs with the others (it is rare by the table's margins, not the
    # reference's alone; see test_drift_categories.py).
    assert color.method == "chi2" and color.drifted
    assert color.p_value is not None and color.p_value < 1e-20
    assert (color.missing_share, color.reference_missing_share) == (0.5, 0.0)
