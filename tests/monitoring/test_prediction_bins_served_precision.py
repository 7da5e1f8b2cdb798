"""A regressor served by an ONNX graph (float32 or float64) sent its own reference rows counts
them in the reference's bins: a boosted model's float32 graph sums its trees an ULP or a few
either side of the float64 sum, and a float64 graph answers an ULP off scikit-learn, which put
a leaf-sum value's rows one bin low (prediction drift 0.12) and the reference maximum "above
the range"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import RegressorMixin
from sklearn.datasets import load_diabetes
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from modelpilot.monitoring.prediction_edges import FLOAT64_EPS, tolerant_bounds
from modelpilot.monitoring.predictions import PredictionBins
from modelpilot.registry.store import Registry
from modelpilot.runtimes.convert import ConvertedRuntime
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored


async def served_counts(
    registry: Registry, name: str, model: RegressorMixin, tmp_path: Path
) -> tuple[dict, list[int], np.ndarray]:
    """``model`` (fitted on the diabetes data's first 200 rows) registered with the other
    242 as its labelled reference, served, and sent those rows: its live prediction summary,
    the reference's bin counts, and the answers."""
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    model.fit(x.iloc[:200], y.iloc[:200] - 300)  # negative targets: an edge's ULP is its own
    joblib.dump(model, tmp_path / f"{name}.joblib")
    reference = x.iloc[200:]
    register_model(
        registry,
        name,
        tmp_path / f"{name}.joblib",
        reference=reference.assign(y=y.iloc[200:] - 300),
        target="y",
    )
    profile = registry.reference_profile(name, 1)
    assert profile is not None and profile.predictions is not None
    async with monitored(registry, drift_window_rows=5000) as served:
        loaded = await served.engine.get_model(name)
        assert isinstance(loaded.runtime, ConvertedRuntime)
        answered: list[float] = []
        for start in range(0, len(reference), 50):
            chunk = reference.iloc[start : start + 50].to_numpy().tolist()
            reply = await served.client.post(f"/predict/{name}", json={"data": chunk})
            assert reply.status_code == 200, reply.text
            answered += reply.json()["predictions"]
        await asyncio.to_thread(served.monitor.flush)
        live = (await served.client.get(f"/api/monitoring/{name}")).json()["predictions"]
    return live, list(profile.predictions.bin_counts), np.array(answered, dtype=np.float64)


@pytest.mark.parametrize(
    "name, model",
    [
        ("boosted", GradientBoostingRegressor(n_estimators=30, max_depth=2, random_state=0)),
        ("linear", LinearRegression()),
    ],
)
async def test_a_graph_sent_the_reference_rows_predicts_as_the_reference(
    registry: Registry, tmp_path: Path, name: str, model: RegressorMixin
) -> None:
    live, reference_counts, answers = await served_counts(registry, name, model, tmp_path)
    expected = model.predict(load_diabetes(as_frame=True).data.iloc[200:])
    assert (answers != expected).any()  # the graph's own rounding, else nothing is tested
    histogram = live["histogram"]
    assert histogram["counts"] == reference_counts, histogram
    assert histogram["below"] == histogram["above"] == [0.0], histogram
    assert live["drift"] == pytest.approx(0.0, abs=1e-6), live


def test_an_edge_moves_off_the_reference_values_only() -> None:
    """Lowered where reference values start at it, raised where they end just below it, the
    top one raised past the maximum; kept where values lie close on both sides, or none."""
    value, far = -87.55498242406334, 1.0
    ulp = np.spacing(abs(value))
    sample = np.array([value - 5 * far, value - 2 * far, value - 2 * far + 3 * ulp, value])
    edges = np.array([value - 5 * far, value - 3.5 * far, value - 2 * far + ulp, value])
    lower, top = tolerant_bounds(edges, sample, FLOAT64_EPS)
    assert lower[0] < edges[0]  # the minimum's rows, served an ULP low, stay in
    assert lower[1] == edges[1]  # between values: a rounding cannot cross it
    assert lower[2] == edges[2]  # values an ULP either side: it cannot tell them apart
    assert top > edges[-1]  # the maximum's rows, served an ULP high, stay in
    # What the original model predicts still bins as numpy's histogram on the edges.
    x, _ = load_diabetes(return_X_y=True)
    predicted = LinearRegression().fit(x[:200], x[:200, 0]).predict(x[200:])
    profile_edges = np.quantile(predicted, np.linspace(0, 1, 11))
    version_free = tolerant_bounds(profile_edges, predicted, FLOAT64_EPS)
    slots = np.searchsorted(version_free[0], predicted, side="right") + (
        predicted > version_free[1]
    )
    assert np.bincount(slots, minlength=12)[1:-1].tolist() == (
        np.histogram(predicted, bins=profile_edges)[0].tolist()
    )
    assert PredictionBins  # (binned by ``PredictionBins`` with these bounds)
