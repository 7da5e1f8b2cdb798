"""A regressor served by a float32 ONNX graph against the reference predictions its scikit-learn
original made in float64 at registration: its predictions count where the original's did, served,
after a restart (from the log), and one by one in a batch that mixes both."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.tree import DecisionTreeRegressor

from modelpilot.monitoring.predictions import PredictionBins
from modelpilot.registry.store import Registry
from modelpilot.runtimes.convert import ConvertedRuntime
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored


@pytest.fixture
def tree(registry: Registry, tmp_path: Path) -> tuple[Registry, pd.DataFrame, np.ndarray]:
    """A tree of four leaves (values float32 cannot hold: 171.909..., 186.372...) registered
    with 242 labelled rows it was not fitted on; and what it predicts on them, in float64."""
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    model = DecisionTreeRegressor(max_depth=2, random_state=0).fit(x.iloc[:200], y.iloc[:200])
    joblib.dump(model, tmp_path / "tree.joblib")
    reference = x.iloc[200:]
    labelled = reference.assign(y=y.iloc[200:])
    register_model(registry, "tree", tmp_path / "tree.joblib", reference=labelled, target="y")
    return registry, reference, model.predict(reference)


async def predictions_of(served: Served) -> dict:
    await asyncio.to_thread(served.monitor.flush)
    return (await served.client.get("/api/monitoring/tree")).json()["predictions"]


async def test_a_float32_graph_sent_the_reference_rows_predicts_as_the_reference(
    tree: tuple[Registry, pd.DataFrame, np.ndarray],
) -> None:
    """The tester's tree, served by ONNX Runtime in float32, put each prediction of a leaf
    value one bin low (171.90908813 below the edge 171.9090909): the 186.37 bin read 0 of 35,
    and the drift 0.42 where scikit-learn's own predictions read 0.08."""
    registry, reference, expected = tree
    profile = registry.reference_profile("tree", 1)
    assert profile is not None and profile.predictions is not None
    edges = np.array(profile.predictions.bin_edges)
    assert (edges.astype(np.float32) != edges).any()  # else nothing would be tested
    async with monitored(registry, drift_window_rows=5000) as served:
        loaded = await served.engine.get_model("tree")
        assert isinstance(loaded.runtime, ConvertedRuntime)
        answered = []
        for start in range(0, len(reference), 50):
            chunk = reference.iloc[start : start + 50].to_numpy().tolist()
            reply = await served.client.post("/predict/tree", json={"data": chunk})
            assert reply.status_code == 200, reply.text
            answered += reply.json()["predictions"]
        live = await predictions_of(served)
    answers = np.array(answered, dtype=np.float64)
    assert (answers != expected).any()  # float32 answers, within the parity check of them
    np.testing.assert_allclose(answers, expected, rtol=1e-6)
    histogram = live["histogram"]
    assert histogram["counts"] == list(profile.predictions.bin_counts), histogram
    assert histogram["below"] == histogram["above"] == [0.0], histogram
    assert live["drift"] == pytest.approx(0.0, abs=1e-6), live

    # Restarted, the window comes back from the log as float64 numbers of float32 values.
    async with monitored(registry, drift_window_rows=5000) as second:
        second.monitoring.start()
        deadline = time.monotonic() + 20
        restored = await predictions_of(second)
        while restored["count"] < len(reference) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            restored = await predictions_of(second)
    assert restored["count"] == len(reference), restored
    assert restored["histogram"] == histogram and restored["drift"] == live["drift"]


def test_each_prediction_counts_where_its_original_did(
    tree: tuple[Registry, pd.DataFrame, np.ndarray],
) -> None:
    """Float32 predictions as float32 arrays and as float64 numbers, and a batch where a few
    come from the float64 original (rows with missing values, which the graph hands to its
    fallback): each counts in the original's bin, and float64 predictions bin as
    ``np.histogram`` does on the reference's edges."""
    registry, _, expected = tree
    version = registry.get_version("tree", 1)
    profile = registry.reference_profile("tree", 1)
    assert profile is not None and profile.predictions is not None
    bins = PredictionBins(version, profile)
    edges = np.array(profile.predictions.bin_edges)
    exact, _ = bins.count({"predict": expected})
    assert exact[1:-2].tolist() == np.histogram(expected, bins=edges)[0].tolist()
    assert exact[[0, -2, -1]].tolist() == [0, 0, 0]
    single = expected.astype(np.float32)
    mixed = single.astype(np.float64)
    mixed[::7] = expected[::7]
    for values in (single, single.astype(np.float64), mixed):
        counts, _ = bins.count({"predict": values})
        assert counts.tolist() == exact.tolist()
    # A hair off an edge that is a leaf value counts with the leaf (a graph's answer an ULP
    # off the original's: ``prediction_edges``); one clearly below it, below.
    low, high = np.nextafter(edges[1], -np.inf), np.nextafter(edges[1], np.inf)
    below = edges[1] - 1e-9 * abs(edges[1])
    counts, _ = bins.count({"predict": np.array([low, high, below])})
    assert counts[1:3].tolist() == [1, 2]


QUARTERS = (
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, x):\n"
    "        return np.round(40 * np.asarray(x, dtype=float)[:, 0]) / 4\n"
)
"""A float64 regressor whose predictions (quarters) all happen to be float32 numbers, between
edges that are not (deciles interpolated between them, 1/3 of the way)."""


def test_a_float64_model_of_float32_numbers_bins_as_its_reference(
    registry: Registry, tmp_path: Path
) -> None:
    """Binned by the edges rounded to float32, a float64 model's predictions that happen to be
    float32 numbers count where the reference's own did."""
    (tmp_path / "quarters.py").write_text(QUARTERS)
    reference = pd.DataFrame({"x": np.random.default_rng(0).normal(size=1003)})
    version = register_model(
        registry, "quarters", tmp_path / "quarters.py", flavor="python", reference=reference
    )
    profile = registry.reference_profile("quarters", 1)
    assert profile is not None and profile.predictions is not None
    edges = np.array(profile.predictions.bin_edges)
    predicted = np.round(40 * reference.x.to_numpy()) / 4
    assert (edges.astype(np.float32) != edges).any()
    assert (predicted.astype(np.float32) == predicted).all()
    counts, _ = PredictionBins(version, profile).count({"predict": predicted})
    assert counts[1:-2].tolist() == list(profile.predictions.bin_counts)
    assert counts[[0, -2, -1]].tolist() == [0, 0, 0]
