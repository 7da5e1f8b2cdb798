"""Infinite values count as missing on both sides: in the reference profile, in the window's
bins (live and ``modelpilot drift``) and in the KS test's values.

The profile counted +/-inf as missing and the window's bins put them below or above the
reference's range: the reference's own rows, shuffled, drifted (PSI 0.62), and one infinity
in a window made Wasserstein infinite."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def with_infinities(rows: int, seed: int) -> np.ndarray:
    """Normal values, 5% of them +inf and 5% -inf."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=rows)
    values[: rows // 20] = np.inf
    values[rows // 20 : rows // 10] = -np.inf
    rng.shuffle(values)
    return values


def offline(reference: np.ndarray, current: np.ndarray, whole: bool) -> FeatureDrift:
    """``modelpilot drift REF CUR`` (``whole``: KS against every reference value), or a
    model's reference profile against its logged rows (KS against the profile's sketch)."""
    frame = pd.DataFrame({"x": reference})
    comparison = compare(
        ReferenceProfile.from_data(frame),
        [pd.DataFrame({"x": current})],
        reference=frame if whole else None,
    )
    return comparison.report.features[0]


@pytest.mark.parametrize("whole", [True, False], ids=["files", "profile"])
@pytest.mark.parametrize("rows", [5000, 800], ids=["large", "small"])
def test_the_reference_shuffled_reads_no_drift(whole: bool, rows: int) -> None:
    """Large: PSI decides (it read 0.62); small: KS and the missing-share test (0% missing
    against the reference's 10%, p = 1e-30 and less)."""
    reference = with_infinities(5000, seed=1)
    current = np.random.default_rng(2).permutation(reference)[:rows]
    x = offline(reference, current, whole)
    assert not x.drifted, x.reason
    assert x.reference_missing_share == pytest.approx(0.1)
    assert x.missing_share == pytest.approx(np.mean(~np.isfinite(current)))
    assert x.psi < 0.05 and x.wasserstein is not None and x.wasserstein < 0.1, x
    if rows == 5000:
        assert x.psi == pytest.approx(0.0, abs=1e-12)
    else:
        assert x.p_value is not None and x.p_value > 0.01  # KS on the finite values alone
        assert x.missing_p_value is not None and x.missing_p_value > 0.01


@pytest.mark.parametrize("rows", [5000, 500])
def test_an_infinity_in_the_window_is_a_missing_value_not_an_infinite_distance(rows: int) -> None:
    """Ten -inf among a window's rows: Wasserstein was inf (a non-null infinity in JSON)."""
    rng = np.random.default_rng(3)
    reference = rng.normal(size=5000)
    current = rng.normal(size=rows)
    current[:10] = -np.inf
    x = offline(reference, current, whole=True)
    assert x.missing_share == pytest.approx(10 / rows)
    assert x.wasserstein is not None and math.isfinite(x.wasserstein) and x.wasserstein < 0.2
    assert all(math.isfinite(v) for v in (x.psi, x.js_distance, x.kl_divergence))
    json.dumps(x.to_dict(), allow_nan=False)  # raises on an infinity


def test_the_live_bins_count_infinities_as_missing() -> None:
    """The live monitor's binning (against the profile's sketch): an infinity lands in the
    missing bin, its sums stay finite, and the KS test sees only the finite values."""
    reference = with_infinities(4000, seed=4)
    profile = ReferenceProfile.from_data(pd.DataFrame({"x": reference}))
    assert profile.features[0].missing == 400
    binning = ProfileBinning(profile)
    rows = np.random.default_rng(5).permutation(reference)[:600].reshape(-1, 1)
    counts, sums = binning.count(rows)
    assert counts[-1] == np.count_nonzero(~np.isfinite(rows))  # the missing bin
    assert counts[0] == counts[-2] == 0  # nothing below or above the reference's range
    assert np.isfinite(sums).all()
    (x,) = binning.report(counts, sums, rows, DriftThresholds()).features
    assert not x.drifted, x.reason
    assert x.wasserstein is not None and math.isfinite(x.wasserstein)
    assert x.p_value is not None and x.p_value > 0.01, x.reason
