"""A float32 model's inputs, rounded to float32 before the monitor sees them, against its
float64 reference: the rows it was registered with read as the reference, served, after a
restart (from the log), and offline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LinearRegression

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored

LEVELS = [0.7, 1.1, 1.3, 1.7]
"""Values float32 cannot hold: 0.7 and 1.3 round down (below their float64 edges), 1.1 and
1.7 up (1.7, the top edge, past the reference's range)."""


def leveled(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"level": rng.choice(LEVELS, rows), "x": rng.normal(size=rows)})


@pytest.fixture
def fp32_registry(registry: Registry, tmp_path: Path) -> tuple[Registry, pd.DataFrame]:
    """A linear regression as a float32 ONNX graph, registered with its 1,200 training rows."""
    reference = leveled(1200, seed=0)
    model = LinearRegression().fit(reference, 3 * reference.level + reference.x)
    graph = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 2]))])
    (tmp_path / "lr.onnx").write_bytes(graph.SerializeToString())
    register_model(registry, "lr32", tmp_path / "lr.onnx", reference=reference)
    return registry, reference


async def drift_of(served: Served) -> dict:
    await asyncio.to_thread(served.monitor.flush)
    return (await served.client.get("/api/monitoring/lr32")).json()["drift"]


async def send(served: Served, rows: pd.DataFrame) -> None:
    for start in range(0, len(rows), 100):
        chunk = rows.iloc[start : start + 100].to_numpy().tolist()
        reply = await served.client.post("/predict/lr32", json={"data": chunk})
        assert reply.status_code == 200, reply.text


def features(drift: dict) -> dict[str, dict]:
    return {f["name"]: f for f in drift["features"]}


async def test_a_float32_model_sent_its_own_reference_rows_reads_no_drift(
    fp32_registry: tuple[Registry, pd.DataFrame],
) -> None:
    """The tester's ONNX model read KS p = 2e-11 on its own reference rows (a feature of
    values float32 cannot hold): no value it logged equalled a reference value, and values
    rounded below an edge fell in the bin below it (or below the range: PSI 4.2)."""
    registry, reference = fp32_registry
    settings = {"drift_window_rows": 5000}
    async with monitored(registry, **settings) as served:
        await send(served, reference.iloc[:400])
        small = await drift_of(served)
        await send(served, reference.iloc[400:])
        large = await drift_of(served)
    assert small["window_rows"] == 400 and not small["drifted_features"], small
    level = features(small)["level"]
    assert level["method"] == "ks" and level["p_value"] > 0.5, level
    assert level["psi"] < 0.01, level
    assert large["window_rows"] == 1200 and not large["drifted_features"], large
    for feature in large["features"]:
        assert feature["method"] == "psi" and feature["psi"] < 1e-3, feature

    # Restarted, the window comes back from the log as float64 numbers of float32 values.
    async with monitored(registry, **settings) as second:
        second.monitoring.start()
        deadline = time.monotonic() + 20
        restored = await drift_of(second)
        while restored["window_rows"] < 1200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            restored = await drift_of(second)
    assert restored["window_rows"] == 1200, restored
    assert [f["psi"] for f in restored["features"]] == [f["psi"] for f in large["features"]]


@pytest.mark.parametrize("rows", [200, 2000])
def test_float32_windows_like_the_reference_seldom_drift(rows: int) -> None:
    """Windows drawn as the reference was, then rounded to float32 (as arrays of float32 and
    as float64 numbers of float32 values, as the log gives them back): as calm as the
    windows themselves (each test at 0.01 / 4: at most about 2% of windows flagged)."""
    profile = ReferenceProfile.from_data(leveled(1000, seed=0))
    binning = ProfileBinning(profile)
    alarms = 0
    for seed in range(1, 101):
        window = leveled(rows, seed).to_numpy()
        for values in (window.astype(np.float32), window.astype(np.float32).astype(np.float64)):
            counts, sums = binning.count(values)
            report = binning.report(counts, sums, values, DriftThresholds())
            alarms += bool(report.drifted_features)
            assert report.features[0].psi < 0.1, report.features[0]
    assert alarms <= 4, alarms  # of 200 reports


def test_float32_values_bin_as_their_float64_originals() -> None:
    """With the reference at hand (as ``modelpilot drift`` has it), the float32 copy of every
    reference row counts where the row does, though the deciles of 1,001 rows lie on reference
    values or a hair past them; a float64 window bins as it did (``np.histogram``'s bins)."""
    reference = leveled(1001, seed=0).assign(tenths=lambda f: f.x.round(1))
    values = reference.to_numpy(copy=True)
    binning = ProfileBinning(ReferenceProfile.from_data(reference), values)
    exact, _ = binning.count(values)
    assert binning.count(values.astype(np.float32))[0].tolist() == exact.tolist()
    offset = 0
    for index, feature in enumerate(binning.profile.features):
        edges = np.array(feature.bin_edges)
        histogram = np.histogram(values[:, index], bins=edges)[0]
        assert exact[offset : offset + edges.size + 2].tolist() == [0, *histogram, 0, 0]
        offset += edges.size + 2


def test_an_old_profiles_decile_a_hair_past_a_value_keeps_its_float32_below() -> None:
    """Deciles were interpolated: of 701 rows of 0.7 and 300 of 1.3 the seventh came out
    0.7 + 6.8e-14, and the 0.7s lay below it. Their float32 is the decile's too: compared
    with the edge rounded to float32, they would all have crossed it."""
    reference = pd.DataFrame({"level": [0.7] * 701 + [1.3] * 300})
    stored = ReferenceProfile.from_data(reference).to_dict()
    edges = np.unique(np.quantile(reference.level, np.linspace(0, 1, 11)))  # as they were made
    counts = np.histogram(reference.level, bins=edges)[0]
    stored["features"][0].update(bin_edges=edges.tolist(), bin_counts=counts.tolist())
    stored["features"][0].pop("bin_means")
    assert edges[1] - 0.7 == pytest.approx(6.8e-14, rel=0.01)
    binning = ProfileBinning(ReferenceProfile.from_dict(stored))
    values = reference.to_numpy()
    exact, _ = binning.count(values)
    assert exact.tolist() == [0, 701, 300, 0, 0]
    for rows in (values.astype(np.float32), values.astype(np.float32).astype(np.float64)):
        counts_, sums = binning.count(rows)
        assert counts_.tolist() == exact.tolist()
        (level,) = binning.report(counts_, sums, rows, DriftThresholds()).features
        assert not level.drifted and level.psi == 0.0, level


def test_offline_drift_of_a_float32_file_reads_no_drift(tmp_path: Path) -> None:
    reference = leveled(1200, seed=0)
    current = reference.iloc[:600].astype(np.float32)  # a float32 Parquet file, say
    current.to_parquet(tmp_path / "current.parquet")
    profile = ReferenceProfile.from_data(reference)
    chunk = pd.read_parquet(tmp_path / "current.parquet")
    report = compare(profile, [chunk], reference=reference).report
    assert not report.drifted_features, report.verdict
    level = report.features[0]
    assert level.method == "ks" and level.p_value > 0.5 and level.psi < 0.01, level
