"""The KS test of small windows against the whole reference (the profile's quantile sketch),
not against the one sample of 256 rows that the profile keeps for its whole life."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.divergence import ks_two_sample
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.registry.profile import SKETCH_LEVELS, ReferenceProfile, quantile_sketch

ROWS = 3000


def unlucky_reference(seed: int = 0) -> pd.DataFrame:
    """Four features of 3,000 draws of N(0, 1) each. Feature ``x``'s values are one fair draw,
    but arranged so that the rows the profile samples (drawn by a fixed seed from the row
    count alone) hold its lower values more often: its sample lies off the law it was drawn
    from (one-sample KS p = 0.003, as a registered model's sample of 256 rows came out by
    chance), while the 3,000 values as a whole do not (p = 0.2)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(ROWS, 4)), columns=["x", "a", "b", "c"])
    numbered = ReferenceProfile.from_data(pd.DataFrame({"row": np.arange(ROWS)}))
    sampled = np.array([row[0] for row in numbered.sample], dtype=np.int64)
    values = frame["x"].to_numpy()
    weights = np.exp(-0.25 * values)
    chosen = rng.choice(ROWS, size=sampled.size, replace=False, p=weights / weights.sum())
    arranged = np.empty(ROWS)
    arranged[sampled] = values[chosen]
    arranged[np.setdiff1d(np.arange(ROWS), sampled)] = rng.permutation(
        values[np.setdiff1d(np.arange(ROWS), chosen)]
    )
    return frame.assign(x=arranged)


def test_an_unlucky_sample_no_longer_drifts_windows_drawn_as_the_reference() -> None:
    """Windows drawn from the reference's own law, judged as the live monitor judges them:
    against the profile's sample, 4% of windows of 200 rows and 10% of 999 had a feature
    flagged (all of them ``x``), where ``p_value`` (0.01) bounds that share for the window as
    a whole; against the whole reference, none."""
    from scipy import stats

    reference = unlucky_reference()
    profile = ReferenceProfile.from_data(reference)
    sample = profile.sample_array()[:, 0]
    assert stats.kstest(sample, "norm").pvalue < 0.01  # the sample is unlucky
    assert stats.kstest(reference["x"], "norm").pvalue > 0.1  # the reference is not
    binning = ProfileBinning(profile)
    rng = np.random.default_rng(1000)
    for rows in (200, 999):
        windows = 250
        drifted = 0
        for _ in range(windows):
            window = rng.normal(size=(rows, 4))
            counts, sums = binning.count(window)
            report = binning.report(counts, sums, window, DriftThresholds())
            drifted += bool(report.drifted_features)
        assert drifted <= 0.01 * windows, (rows, drifted)


def test_the_ks_p_value_is_that_against_every_reference_value() -> None:
    """A window's KS p-value in the monitor is the one against all 3,000 reference values
    (as ``modelpilot drift REF CUR`` computes it, with the reference at hand), within the
    sketch's error, and counts the reference as all its finite rows."""
    reference = unlucky_reference()
    profile = ReferenceProfile.from_data(reference)
    live, offline = ProfileBinning(profile), ProfileBinning(profile, reference.to_numpy())
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.1, 0.2):
        window = rng.normal(size=(500, 4)) + shift
        p_values = []
        for binning in (live, offline):
            counts, sums = binning.count(window)
            report = binning.report(counts, sums, window, DriftThresholds())
            p_values.append(report.features[0].p_value)
        whole = ks_two_sample(reference["x"].to_numpy(), window[:, 0])
        sketched = ks_two_sample(np.array(profile.features[0].sketch), window[:, 0], ROWS)
        assert p_values[1] == whole[1]
        assert p_values[0] == sketched[1]
        assert abs(sketched[0] - whole[0]) <= 1 / (2 * SKETCH_LEVELS) + 1e-12
        assert p_values[0] == pytest.approx(whole[1], rel=0.1, abs=1e-6)


def test_a_profile_stored_without_a_sketch_keeps_testing_its_sample() -> None:
    reference = unlucky_reference()
    stored = ReferenceProfile.from_data(reference).to_dict()
    assert len(stored["features"][0]["sketch"]) == SKETCH_LEVELS
    assert ReferenceProfile.from_dict(stored).features[0].sketch == tuple(
        stored["features"][0]["sketch"]
    )
    for feature in stored["features"]:
        del feature["sketch"]
    old = ReferenceProfile.from_dict(stored)
    window = np.random.default_rng(4).normal(size=(400, 4))
    binning = ProfileBinning(old)
    counts, sums = binning.count(window)
    (x, *_) = binning.report(counts, sums, window, DriftThresholds()).features
    assert x.p_value == ks_two_sample(old.sample_array()[:, 0], window[:, 0])[1]


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).normal(size=5000),
        np.random.default_rng(1).poisson(3, size=7777).astype(float),  # ties
        np.concatenate([np.zeros(4000), np.random.default_rng(2).lognormal(size=1001)]),
        np.random.default_rng(3).normal(size=1024),
        np.random.default_rng(4).integers(0, 5, size=300).astype(float),
    ],
    ids=["normal", "poisson", "zero-inflated", "1024 rows", "300 rows"],
)
def test_the_sketch_reads_the_whole_distribution_within_half_a_level(values: np.ndarray) -> None:
    """At every value (reference values, values between them, and past both ends) the share
    of the sketch at or below it is the reference's within 1/2,048; a reference of 1,024
    values or fewer is kept whole. Every value of the sketch is one the reference held."""
    sketch = quantile_sketch(values)
    ordered = np.sort(values)
    assert sketch.size == min(values.size, SKETCH_LEVELS)
    assert np.all(np.diff(sketch) >= 0) and np.isin(sketch, values).all()
    if values.size <= SKETCH_LEVELS:
        assert sketch.tolist() == ordered.tolist()
    distinct = np.unique(values)
    between = (distinct[:-1] + distinct[1:]) / 2
    points = np.concatenate([distinct, between, [distinct[0] - 1, distinct[-1] + 1]])
    whole = np.searchsorted(ordered, points, "right") / ordered.size
    read = np.searchsorted(sketch, points, "right") / sketch.size
    assert np.abs(read - whole).max() <= 1 / (2 * SKETCH_LEVELS) + 1e-12


def test_a_float32_model_sent_its_own_reference_rows_reads_no_drift() -> None:
    """The sketch is rounded to float32 when a window's values all are float32, as the
    sample was: 0.7 is 0.69999999 in float32, and no logged value would equal one of the
    sketch's (a feature of the values 0.1, 0.2, 0.3 and 0.7 once read KS p = 2e-11)."""
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"level": rng.choice([0.1, 0.2, 0.3, 0.7], size=ROWS)})
    profile = ReferenceProfile.from_data(reference)
    assert len(profile.features[0].sketch) == SKETCH_LEVELS
    binning = ProfileBinning(profile)
    window = reference.iloc[:600].to_numpy()
    for values in (window.astype(np.float32), window.astype(np.float32).astype(np.float64)):
        counts, sums = binning.count(values)
        (level,) = binning.report(counts, sums, values, DriftThresholds()).features
        assert level.method == "ks" and not level.drifted, level
        assert level.p_value is not None and level.p_value > 0.5, level
