"""A version's numeric features are judged together (``numeric_stack``), with each feature's
scores and verdict as judged on its own (``drift.judge_numeric``), and with no call per
feature into the scores: a model of 2,000 numbers, judged feature by feature every 2 s on the
serving process's monitor thread, held the interpreter lock 0.2-0.45 s each time."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring import divergence
from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.registry.profile import ReferenceProfile

THRESHOLDS = DriftThresholds(features=12, looks=24)


def reference(rows: int, seed: int) -> pd.DataFrame:
    """Numbers of every kind a profile bins differently: a bell curve, one constant, whole
    numbers of a few values (ties, empty bins), a column often missing or infinite, one of
    no value at all, a float32 column, a skewed one, and text beside them."""
    rng = np.random.default_rng(seed)
    often_missing = rng.normal(size=rows)
    often_missing[rng.random(rows) < 0.2] = np.nan
    often_missing[rng.random(rows) < 0.05] = np.inf
    return pd.DataFrame(
        {
            "bell": rng.normal(size=rows),
            "constant": np.full(rows, 3.0),
            "codes": rng.integers(0, 4, rows).astype(np.float64),
            "often_missing": often_missing,
            "never_there": np.full(rows, np.nan),
            "single": rng.normal(size=rows).astype(np.float32),
            "skewed": rng.exponential(size=rows) ** 3,
            "city": rng.choice(["a", "b", "c"], rows),
            "tenths": rng.normal(size=rows).round(1),
        }
    )


def windows(rows: int, seed: int) -> Iterator[np.ndarray]:
    """Windows drawn as the reference was and apart from it: shifted, out of its range,
    missing values where it had none, a constant moved, and whole columns empty."""
    frame = reference(rows, seed)
    rng = np.random.default_rng(seed + 1)
    yield frame.to_numpy(dtype=object)
    moved = frame.copy()
    moved["bell"] += 0.5
    moved["constant"] = rng.choice([3.0, 4.0], rows)
    moved["codes"] = rng.integers(2, 9, rows).astype(np.float64)  # bins the reference left empty
    moved["often_missing"] = np.where(rng.random(rows) < 0.6, np.nan, moved["often_missing"])
    moved["never_there"] = rng.normal(size=rows)
    moved["skewed"] = -moved["skewed"]
    moved["tenths"] = np.where(rng.random(rows) < 0.1, -np.inf, moved["tenths"])
    yield moved.to_numpy(dtype=object)
    empty = frame.copy()
    empty["bell"] = np.nan
    empty["single"] = np.float32(0.7)
    yield empty.to_numpy(dtype=object)


def same(stacked: FeatureDrift, alone: FeatureDrift) -> list[str]:
    """The fields in which the two differ: figures beyond a relative 1e-12 (they are the same
    arithmetic, and came out equal to the bit), anything else at all."""
    ours, theirs = stacked.to_dict(), alone.to_dict()
    differ = []
    for key, value in ours.items():
        other = theirs[key]
        if isinstance(value, float) and isinstance(other, float):
            if math.isnan(value) and math.isnan(other):
                continue
            if math.isclose(value, other, rel_tol=1e-12, abs_tol=1e-15):
                continue
        elif value == other:
            continue
        differ.append(f"{key}: {value!r} != {other!r}")
    return differ


def alone(binning: ProfileBinning, counts: np.ndarray, sums: np.ndarray, recent: Any) -> list:
    """Each numeric feature judged on its own, as before (``_judge_numeric``)."""
    return [
        binning._judge_numeric(
            position,
            spec,
            counts[spec.offset : spec.offset + spec.width],
            sums,
            recent,
            THRESHOLDS,
        )
        for position, spec in enumerate(binning._numeric)
    ]


@pytest.mark.parametrize("reference_rows", [60, 3000])  # a small reference: KS on its bins
@pytest.mark.parametrize("window_rows", [0, 12, 45, 400, 1500, 6000])
@pytest.mark.parametrize("sketched", [True, False])  # the profile's sketch, or all its rows
def test_features_judged_together_are_judged_as_each_alone(
    reference_rows: int, window_rows: int, sketched: bool
) -> None:
    data = reference(reference_rows, seed=reference_rows)
    profile = ReferenceProfile.from_data(data)
    binning = ProfileBinning(profile, None if sketched else data.to_numpy(dtype=object))
    compared = 0
    for seed, window in enumerate(windows(max(window_rows, 1), seed=window_rows)):
        rows = window[:window_rows]
        counts, sums = binning.count(rows)
        for recent in (rows, None):  # the window's values at hand, or only its counts
            together = binning._stack.judge(counts, sums, recent, THRESHOLDS)
            each = alone(binning, counts, sums, recent)
            assert [f.name for f in together] == [f.name for f in each]
            for stacked, judged in zip(together, each, strict=True):
                assert not same(stacked, judged), (seed, stacked.name, same(stacked, judged))
                compared += 1
    assert compared == 3 * 2 * 8


def test_random_windows_of_many_features_are_judged_as_each_alone() -> None:
    """Random references and windows, bins of every width at once, some emptied by the
    window (PSI's and KL's epsilon), some only in it, missing values on either side."""
    rng = np.random.default_rng(7)
    methods: set[str] = set()
    for trial in range(8):
        features, rows = 40, int(rng.integers(50, 800))
        columns = {}
        for i in range(features):
            distinct = int(rng.integers(1, 30))
            columns[f"f{i}"] = rng.integers(0, distinct, rows) * rng.exponential()
        data = pd.DataFrame(columns)
        data = data.mask(rng.random(data.shape) < rng.random() * 0.1)
        binning = ProfileBinning(ReferenceProfile.from_data(data))
        size = int(rng.choice([20, 31, 200, 999, 1000, 3000]))
        window = data.sample(size, replace=True, random_state=trial).to_numpy()
        window = window * rng.choice([1.0, 1.3], features) + rng.choice([0.0, 2.0], features)
        window[rng.random(window.shape) < rng.random() * 0.3] = np.nan
        counts, sums = binning.count(window)
        recent = window if size < THRESHOLDS.large_sample_rows else None
        together = binning._stack.judge(counts, sums, recent, THRESHOLDS)
        each = alone(binning, counts, sums, recent)
        for stacked, judged in zip(together, each, strict=True):
            assert not same(stacked, judged), (trial, stacked.name, same(stacked, judged))
        methods |= {f.method for f in together}
    assert {"none", "ks", "psi"} <= methods, methods


def test_the_scores_take_no_call_per_feature() -> None:
    """The report of 300 numbers calls none of ``divergence``'s functions per feature (PSI,
    Jensen-Shannon, Wasserstein, KS): judged one by one it called them some 1,500 times."""
    rng = np.random.default_rng(3)
    data = pd.DataFrame(rng.normal(size=(2000, 300))).add_prefix("f")
    binning = ProfileBinning(ReferenceProfile.from_data(data))
    counted: list[str] = []

    def count(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_globals.get("__name__") == divergence.__name__:
            counted.append(frame.f_code.co_name)

    for size in (200, 3000):  # KS on the window's values, and PSI alone
        window = data.sample(size, replace=True, random_state=size).to_numpy() + 0.1
        counts, sums = binning.count(window)
        recent = window if size < THRESHOLDS.large_sample_rows else None
        sys.setprofile(count)
        try:
            report = binning.report(counts, sums, recent, THRESHOLDS)
        finally:
            sys.setprofile(None)
        assert len(report.features) == 300
        assert report.judged
    # The reference's probabilities are worked out once, when the binning is made.
    assert len(counted) <= 10, sorted(set(counted))


def test_the_report_keeps_the_profiles_order() -> None:
    data = reference(500, seed=1)[["city", "bell", "tenths", "codes"]]
    binning = ProfileBinning(ReferenceProfile.from_data(data))
    window = data.to_numpy(dtype=object)
    counts, sums = binning.count(window)
    report = binning.report(counts, sums, window, THRESHOLDS)
    assert [f.name for f in report.features] == ["city", "bell", "tenths", "codes"]
