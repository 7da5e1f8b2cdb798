"""A numeric feature against a small reference: PSI's noise on a window drawn as the reference
was is the smaller sample's, so against fewer than ``large_sample_rows`` reference values the
feature's tests keep deciding on large windows too, KS read on the window's counts.

PSI decided alone from 1,000 rows whatever the reference's size: windows of 5,000 rows drawn
as a reference of 50 rows was drifted 18 times in 20 (PSI 0.39, all of it the reference's
sampling error), and a CI job failed at 1,000 rows where it passed at 999.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile


def normal(rows: int, seed: int, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    x[rng.random(rows) < missing] = np.nan
    return pd.DataFrame({"x": x})


def judged(reference: pd.DataFrame, *chunks: pd.DataFrame) -> FeatureDrift:
    """The feature as ``modelpilot drift REF CUR`` judges it."""
    profile = ReferenceProfile.from_data(reference)
    return compare(profile, list(chunks), reference=reference).report.features[0]


@pytest.mark.parametrize("reference_rows", [30, 50, 100])
def test_large_windows_drawn_as_a_small_reference_was_do_not_drift(reference_rows: int) -> None:
    """20 references, each with a window of 5,000 rows of its law: PSI alone drifted about
    19, 17 and 8 of them; the test, at the level 0.5% and conservative on counts, none."""
    drifted = [judged(normal(reference_rows, seed), normal(5000, 100 + seed)) for seed in range(20)]
    assert sum(f.drifted for f in drifted) <= 1, [f.reason for f in drifted if f.drifted]
    assert all(f.method in ("ks", "missing", "psi") for f in drifted)
    assert all(f.psi > 0 and f.p_value is not None for f in drifted)


def test_a_window_of_1000_rows_is_judged_as_one_of_999() -> None:
    """The tester's case: the first 999 rows of a window of the reference's law passed, its
    first 1,000 drifted (PSI 0.62 >= 0.2), as did all 5,000."""
    reference, window = normal(50, 5), normal(5000, 105)
    verdicts = [judged(reference, window[:rows]) for rows in (999, 1000, 5000)]
    assert [f.drifted for f in verdicts] == [False, False, False], [f.reason for f in verdicts]
    assert all(f.psi >= 0.2 for f in verdicts)  # the reference's own noise, past the line
    small, large, _ = verdicts
    assert small.method == large.method == "ks"
    assert "read on the reference's bins" not in small.reason  # 999 rows: their values
    assert large.reason.startswith("values as in the reference (read on the reference's bins)")
    assert large.reason.endswith(
        "; tested, as the reference's 50 values are too few (under 1,000) for PSI to decide alone"
    )


def test_the_live_monitors_large_window_is_tested_on_its_counts() -> None:
    """The monitor keeps a large window's counts, not its rows (``recent`` is None)."""
    reference = normal(50, 5)
    binning = ProfileBinning(ReferenceProfile.from_data(reference))
    for seed, shift, drifts in [(6, 0.0, False), (7, 1.5, True)]:
        counts, sums = binning.count(normal(5000, seed, shift).to_numpy())
        (x,) = binning.report(counts, sums, None, DriftThresholds()).features
        assert x.drifted is drifts and x.method == "ks", x.reason
        assert "read on the reference's bins" in x.reason


def test_a_large_shift_still_drifts_against_a_small_reference() -> None:
    found = judged(normal(50, 8), normal(5000, 9, shift=1.5))
    assert found.drifted and found.method == "ks", found.reason
    assert found.reason.startswith("values differ from the reference")
    assert "; PSI " in found.reason and ">= 0.2; tested, as the reference's 50" in found.reason


def test_a_shift_in_the_windows_older_rows_counts() -> None:
    """Counts hold every row of the window: its older rows' shift is not left to PSI alone,
    nor lost to a test of its newest rows."""
    shifted, plain = normal(1000, 10, shift=3.0), normal(2000, 11)
    found = judged(normal(150, 12), shifted, plain)
    assert found.drifted and found.method == "ks", found.reason


def test_the_missing_share_is_tested_too() -> None:
    found = judged(normal(100, 13), normal(5000, 14, missing=0.3))
    assert found.drifted and found.method == "missing", found.reason


@pytest.mark.parametrize(
    ("reference_rows", "missing", "method"),
    [(1000, 0.0, "psi"), (999, 0.0, "ks"), (1300, 0.25, "ks")],  # 1,300 rows, 975 values
)
def test_psi_decides_alone_from_as_many_reference_values(
    reference_rows: int, missing: float, method: str
) -> None:
    found = judged(normal(reference_rows, 15, missing=missing), normal(1000, 16, missing=missing))
    assert found.method == method and not found.drifted, found.reason
