"""A feature drifts when its shift is large enough to act on (PSI for numbers, Jensen-Shannon
for categories, as on large windows) and, on windows under ``large_sample_rows``, its tests
also find it past chance: one rule on either side of 1,000 rows.

The tests alone decided small windows: a 0.3-sigma shift drifted in every window of 999 rows
and in none of 1,000, so the live verdict (and its alert) flapped as the window filled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.registry.profile import ReferenceProfile

CATEGORIES = np.array(["a", "b", "c", "d", "e"], dtype=object)
SHARES = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


@pytest.fixture(scope="module")
def numbers() -> ProfileBinning:
    values = np.random.default_rng(0).normal(size=5000)
    return ProfileBinning(ReferenceProfile.from_data(pd.DataFrame({"x": values})))


@pytest.fixture(scope="module")
def categories() -> ProfileBinning:
    values = np.random.default_rng(0).choice(CATEGORIES, 5000, p=SHARES)
    return ProfileBinning(ReferenceProfile.from_data(pd.DataFrame({"c": values})))


def judged(binning: ProfileBinning, column: np.ndarray) -> FeatureDrift:
    rows = column.reshape(-1, 1)
    counts, sums = binning.count(rows)
    (feature,) = binning.report(counts, sums, rows, DriftThresholds()).features
    # The score always says the verdict: at or past its threshold exactly when drifted.
    assert (feature.score >= feature.threshold) is feature.drifted, feature
    return feature


@pytest.mark.parametrize("rows", [999, 1000, 5000])
def test_a_small_shift_reads_alike_on_either_side_of_a_thousand_rows(
    numbers: ProfileBinning, rows: int
) -> None:
    """0.3 reference sigmas (PSI 0.08 to 0.13, under 0.2): past chance for KS at 999 rows
    (p = 1e-10 to 1e-18), yet too small to act on, at every size."""
    for seed in range(5):
        x = judged(numbers, np.random.default_rng(seed).normal(0.3, 1, rows))
        assert not x.drifted and x.method == "psi" and x.psi < 0.2, x
        if rows < 1000:
            assert x.p_value is not None and x.p_value < 1e-6, x
            assert x.reason.startswith(f"PSI {x.psi:.3f} < 0.2, too small a shift to act on")
            assert "though past chance: values differ from the reference: KS test" in x.reason
            assert x.deciding_p_value == x.p_value  # what /metrics exports, as before


@pytest.mark.parametrize("rows", [100, 300, 999, 1000, 5000])
def test_a_large_shift_drifts_at_every_size(numbers: ProfileBinning, rows: int) -> None:
    x = judged(numbers, np.random.default_rng(rows).normal(1.0, 1, rows))
    assert x.drifted and x.psi >= 0.2, x
    if rows < 1000:  # the test decided, and the effect size let it stand
        assert x.method == "ks" and x.reason.endswith(f"; PSI {x.psi:.3f} >= 0.2"), x


def test_a_missing_share_jump_on_a_small_window_still_drifts(numbers: ProfileBinning) -> None:
    """0% to 10% missing on 200 rows: the missing bin holds PSI far past the line (0.7)."""
    column = np.random.default_rng(1).normal(size=200)
    column[::10] = np.nan
    x = judged(numbers, column)
    assert x.drifted and x.method == "missing" and x.psi > 0.5, x


def test_a_small_categorical_move_reads_alike_on_either_side_of_a_thousand_rows(
    categories: ProfileBinning,
) -> None:
    """Five points of share from the commonest category to the rarest: chi-squared finds it
    past chance on 999 rows (p = 1e-4), its Jensen-Shannon distance (0.07) is under the line."""
    moved = SHARES + np.array([-0.05, 0, 0, 0, 0.05])
    for rows in (999, 1000):
        c = judged(categories, np.random.default_rng(rows).choice(CATEGORIES, rows, p=moved))
        assert not c.drifted and c.method == "js" and c.js_distance < 0.1, c
    assert c.p_value is not None and c.p_value < 0.005  # past chance at 1,000 rows too
    small = judged(categories, np.random.default_rng(999).choice(CATEGORIES, 999, p=moved))
    assert "too small a shift to act on, though past chance: categories differ" in small.reason


def test_unseen_values_on_a_small_window_still_drift(categories: ProfileBinning) -> None:
    """A fifth of 200 rows holding a value the reference never had: Jensen-Shannon 0.3."""
    column = np.random.default_rng(2).choice(CATEGORIES, 200, p=SHARES)
    column[::5] = "new"
    c = judged(categories, column)
    assert c.drifted and c.js_distance > 0.25 and c.unseen_share == pytest.approx(0.2), c
