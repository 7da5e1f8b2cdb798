"""Missing values in every form pandas and NumPy hold them (None, NaN, pd.NA, NaT) are missing.

Nullable Parquet columns (string, Int64, boolean) come to pandas with ``pd.NA``: it was
counted as a category ("<NA>", unseen) or crashed the KS test (``float(pd.NA)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import CATEGORY_GROUPS, FeatureProfile, ReferenceProfile
from modelpilot.tabular import iter_table


def nullable(rows: int, seed: int, missing: float) -> pd.DataFrame:
    """Text, whole numbers and booleans in pandas' nullable types, ``missing`` of them NA."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "s": pd.array(rng.choice(["a", "b"], rows), dtype="string"),
            "i": pd.array(rng.integers(0, 9, rows), dtype="Int64"),
            "b": pd.array(rng.random(rows) < 0.5, dtype="boolean"),
        }
    )
    for column in frame.columns:
        frame.loc[rng.random(rows) < missing, column] = pd.NA
    return frame


def test_the_profile_counts_pandas_na_as_missing_and_keeps_none_in_its_sample() -> None:
    frame = nullable(400, seed=0, missing=0.2)
    profile = ReferenceProfile.from_data(frame)
    for feature in profile.features:
        assert feature.missing == int(frame[feature.name].isna().sum()) > 0, feature.name
        assert "<NA>" not in feature.categories
    assert profile.feature("i").kind == "numeric"
    assert all(v is None or v == v for row in profile.sample for v in row)
    assert "<NA>" not in {str(v) for row in profile.sample for v in row}
    only_numbers = ReferenceProfile.from_data(frame[["i"]])
    assert np.isnan(only_numbers.sample_array()).any()  # <NA> was text there, and refused


@pytest.mark.parametrize(
    "value", [None, np.nan, pd.NA, pd.NaT, np.datetime64("NaT"), np.float32("nan")]
)
def test_every_kind_of_missing_value_falls_in_the_missing_bin(value: object) -> None:
    profile = FeatureProfile.categorical("s", pd.Series(["a", "b", None] * 10, dtype=object))
    binning = ProfileBinning(ReferenceProfile((profile,), 30, []))
    counts, _ = binning.count(np.array([["a"], [value]], dtype=object))
    assert counts.tolist() == [1, 0, 0, 1] + [0] * CATEGORY_GROUPS  # a, b, unseen, missing


def test_nullable_parquet_columns_compare_as_their_csv_copy_does(tmp_path: Path) -> None:
    """``modelpilot drift na_ref.parquet na_cur.parquet`` crashed in the KS test, and the
    text column's missing values counted as unseen (its missing share read "-")."""
    reference, current = nullable(600, seed=1, missing=0.0), nullable(300, seed=2, missing=0.3)
    current.to_parquet(tmp_path / "current.parquet")
    current.to_csv(tmp_path / "current.csv", index=False)
    profile = ReferenceProfile.from_data(reference)
    reports = {
        name: compare(profile, iter_table(tmp_path / name, 100, text_columns=["s"])).report
        for name in ("current.parquet", "current.csv")
    }
    shares = {
        name: [(f.name, f.missing_share, f.unseen_share) for f in report.features]
        for name, report in reports.items()
    }
    assert shares["current.parquet"] == shares["current.csv"]
    for name, missing_share, unseen_share in shares["current.parquet"]:
        assert missing_share == pytest.approx(current[name].isna().mean())
        assert unseen_share == 0.0, name
    assert [f.drifted for f in reports["current.parquet"].features] == [True, True, True]
    assert [f.method for f in reports["current.parquet"].features] == ["chi2", "missing", "chi2"]


def test_a_window_of_rows_with_pandas_na_is_judged_without_crashing() -> None:
    """The live monitor's rows are object arrays too: NA in a number's column is missing."""
    reference = nullable(600, seed=3, missing=0.0)
    binning = ProfileBinning(ReferenceProfile.from_data(reference))
    rows = nullable(100, seed=4, missing=0.1).to_numpy(dtype=object)  # pd.NA kept
    counts, sums = binning.count(rows)
    report = binning.report(counts, sums, rows, DriftThresholds())
    for column, feature in enumerate(report.features):
        assert feature.missing_share == pytest.approx(np.mean(pd.isna(rows[:, column])))
