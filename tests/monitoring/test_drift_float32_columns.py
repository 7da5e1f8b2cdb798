"""Float32-ness is a matter of each column, on both sides: the same numbers read no drift
whether the reference and the current data store each column as float32 or float64 (a
Parquet file's float32 column beside float64 ones, a float32 Parquet reference against CSV)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored

CODES = [0.1, 0.2, 0.3, 0.7, 1.3]
"""Values float32 cannot hold, some rounding down (0.7, 0.3) and some up (0.1, 1.3)."""


def coded(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "k": rng.choice(CODES, rows),
            "x": rng.normal(size=rows),
            "tenths": rng.normal(size=rows).round(1),
        }
    )


def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(frac=1, random_state=2).reset_index(drop=True)


def through_parquet(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame.to_parquet(path)
    return pd.read_parquet(path)


@pytest.mark.parametrize("rows", [400, 3000])  # KS on small windows, PSI on large ones
def test_one_float32_column_beside_float64_ones_reads_its_own_rows_as_no_drift(
    tmp_path: Path, rows: int
) -> None:
    """The tester's Parquet file of the reference's own rows, ``k`` float32 and the rest
    float64, read PSI 1.64 on ``k``: one look at the whole batch found it not all float32,
    so ``k``'s 0.69999999 was binned by the float64 edges, below 0.7."""
    reference = coded(rows, seed=0)
    current = shuffled(reference).astype({"k": np.float32, "tenths": np.float32})
    chunk = through_parquet(current, tmp_path / "mixed.parquet")
    assert chunk.dtypes.astype(str).tolist() == ["float32", "float64", "float32"]
    profile = ReferenceProfile.from_data(reference)
    for given in (reference, None):  # the reference at hand (two files), or the sketch
        report = compare(profile, [chunk], reference=given).report
        assert not report.drifted_features, report.verdict
        for feature in report.features:
            assert feature.psi is not None and feature.psi < 1e-3, feature
            if feature.method == "ks":
                assert feature.p_value is not None and feature.p_value > 0.5, feature


def test_a_float32_column_bins_as_the_whole_batch_of_float32_would() -> None:
    """Counts of a mixed batch, feature by feature, are those of the batch all float32 (for
    the float32 columns) and all float64 (for the others)."""
    reference = coded(1000, seed=0)
    binning = ProfileBinning(ReferenceProfile.from_data(reference), reference.to_numpy())
    values = reference.to_numpy()
    mixed = values.copy()
    mixed[:, 0] = values[:, 0].astype(np.float32)
    exact, _ = binning.count(values)
    assert binning.count(mixed)[0].tolist() == exact.tolist()
    assert binning.count(values.astype(np.float32))[0].tolist() == exact.tolist()


@pytest.mark.parametrize("rows", [400, 3000])
def test_a_float32_reference_reads_float64_copies_of_its_numbers_as_no_drift(
    tmp_path: Path, rows: int
) -> None:
    """A float32 Parquet reference against the same numbers in CSV read PSI 6.0: its edges
    were float32 numbers (0.10000000149), which the CSV's 0.1 fell below. The profile now
    says the feature was float32, and a window's values are rounded so before binning."""
    original = coded(rows, seed=0)
    reference = through_parquet(original.astype(np.float32), tmp_path / "reference.parquet")
    csv = tmp_path / "current.csv"
    shuffled(original).to_csv(csv, index=False)
    current = pd.read_csv(csv)
    profile = ReferenceProfile.from_data(reference)
    assert [f.float32 for f in profile.features] == [True, True, True]
    for given in (reference, None):
        report = compare(profile, [current], reference=given).report
        assert not report.drifted_features, report.verdict
        for feature in report.features:
            assert feature.psi is not None and feature.psi < 1e-3, feature
            if feature.method == "ks":
                assert feature.p_value is not None and feature.p_value > 0.5, feature
    # and against its own float32 rows, and a mix of both, as before
    mixed = shuffled(original).astype({"k": np.float32})
    for chunk in (reference, mixed):
        report = compare(profile, [chunk], reference=reference).report
        assert not report.drifted_features and max(f.psi or 0 for f in report.features) < 1e-3


def test_a_float32_reference_still_sees_drift_in_float64_data() -> None:
    """Rounding a window to float32 hides nothing float32 could tell: a shifted window of
    float64 numbers reads as drifted."""
    reference = coded(3000, seed=0).astype(np.float32)
    current = coded(3000, seed=1).assign(x=lambda f: f.x + 0.5)
    report = compare(ReferenceProfile.from_data(reference), [current]).report
    assert report.drifted_features == ["x"], report.verdict


def test_the_binning_leaves_the_callers_rows_as_they_were() -> None:
    """A float32 reference's window is rounded on a copy: the rows (kept for the KS test, and
    in the live monitor's window) keep the values that came."""
    reference = coded(500, seed=0).astype(np.float32)
    binning = ProfileBinning(ReferenceProfile.from_data(reference))
    rows = np.asfortranarray(coded(50, seed=1).to_numpy())  # its transpose needs no copy
    kept = rows.copy()
    binning.count(rows)
    assert np.array_equal(rows, kept)


async def test_a_served_model_with_a_float32_reference_column_reads_its_rows_as_no_drift(
    registry: Registry, tmp_path: Path
) -> None:
    """Registered with a Parquet reference whose ``k`` is float32 (its other columns float64,
    so the model takes float64 rows), a model sent the reference's numbers as JSON logged
    0.1 for ``k``, below the reference's edge of 0.10000000149: drifted on its own rows."""
    original = coded(1200, seed=0)
    joblib.dump(LinearRegression().fit(original, original.x), tmp_path / "lr.joblib")
    original.astype({"k": np.float32}).to_parquet(tmp_path / "reference.parquet")
    version = register_model(
        registry, "lr", tmp_path / "lr.joblib", reference=tmp_path / "reference.parquet"
    )
    assert version.signature.inputs[0].datatype == "FP64"
    async with monitored(registry, drift_window_rows=5000) as served:
        for start in range(0, 1200, 100):
            chunk = original.iloc[start : start + 100].to_numpy().tolist()
            reply = await served.client.post("/predict/lr", json={"data": chunk})
            assert reply.status_code == 200, reply.text
            if start == 300:
                small = await drift_of(served)
        large = await drift_of(served)
    assert small["window_rows"] == 400 and not small["drifted_features"], small
    assert large["window_rows"] == 1200 and not large["drifted_features"], large
    for feature in large["features"]:
        assert feature["psi"] < 1e-3, feature


async def drift_of(served: Served) -> dict[str, Any]:
    await asyncio.to_thread(served.monitor.flush)
    reply = await served.client.get("/api/monitoring/lr")
    drift: dict[str, Any] = reply.json()["drift"]
    return drift
