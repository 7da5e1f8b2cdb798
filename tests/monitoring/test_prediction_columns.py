"""A prediction of several values a row (a regressor of several targets): each column's mean
and variance, in the report, /api/monitoring, /api/dashboard and /metrics. They had been the
first column's alone, under the name of the whole prediction, the other targets unwatched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression

from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored

WATCHED_COLUMNS = 32
"""Columns of a wide output that are watched (``predictions.WATCHED_COLUMNS``)."""


def targets(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Four features and three targets of other centres and scales (the third near 1e8)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["f0", "f1", "f2", "f3"])
    x = frame.to_numpy()
    y = np.column_stack([3 * x[:, 0] + x[:, 1], -2 + 0.5 * x[:, 2], 1e8 + x[:, 3]])
    return frame, y


def registered(registry: Registry, tmp_path: Path, outputs: int = 3) -> ModelMonitor:
    """The monitor of a LinearRegression of ``outputs`` targets, registered with a reference."""
    frame, y = targets(300, 0)
    if outputs != 3:
        y = np.random.default_rng(1).normal(size=(300, outputs))
    path = tmp_path / "multi.joblib"
    joblib.dump(LinearRegression().fit(frame, y), path)
    version = register_model(registry, "multi", path, reference=frame, aliases=["production"])
    return ModelMonitor(version, registry.reference_profile("multi", 1), MonitorConfig())


def test_each_column_has_its_mean_and_variance(registry: Registry, tmp_path: Path) -> None:
    monitor = registered(registry, tmp_path)
    frame, y = targets(400, 2)
    assert monitor.predictions is not None
    for start in range(0, 400, 50):
        chunk = slice(start, start + 50)
        monitor.observe(1, frame.to_numpy()[chunk], {"predict": y[chunk]}, at=1000.0)
    summary = monitor.report(2000.0).predictions
    assert summary is not None and summary.columns is not None
    assert [c.output for c in summary.columns] == ["predict[0]", "predict[1]", "predict[2]"]
    assert [c.count for c in summary.columns] == [400, 400, 400]
    for column, values in zip(summary.columns, y.T, strict=True):
        assert column.mean == pytest.approx(values.mean(), rel=1e-12)
        assert column.variance == pytest.approx(values.var(), rel=1e-6)
    # No one figure of the three targets, which was read as the whole prediction's.
    assert summary.mean is None and summary.variance is None
    data = summary.to_dict()
    assert data["unwatched_columns"] == 0
    assert "by column" in data["note"]
    assert data["columns"][1] == {
        "output": "predict[1]",
        "count": 400,
        "mean": summary.columns[1].mean,
        "variance": summary.columns[1].variance,
    }


def test_workers_merge_each_column_about_its_own_pivot(registry: Registry, tmp_path: Path) -> None:
    """Each worker takes each column's sums about its own first value there: merged, they
    are moved column by column (the third, near 1e8, lost its variance to rounding about
    another column's pivot)."""
    first = registered(registry, tmp_path)
    second = ModelMonitor(first.version, registry.reference_profile("multi", 1), first.config)
    frame, y = targets(100, 3)
    rows = frame.to_numpy()
    y[40:, 2] += 5  # the second worker's first value there is another pivot
    first.observe(1, rows[:40], {"predict": y[:40]}, at=1000.0)
    second.observe(1, rows[40:], {"predict": y[40:]}, at=1000.0)
    merged = first.report(2000.0, peers=[second.state(2000.0)]).predictions
    assert merged is not None and merged.columns is not None
    for column, values in zip(merged.columns, y.T, strict=True):
        assert column.count == 100
        assert column.mean == pytest.approx(values.mean(), rel=1e-15)
        assert column.variance == pytest.approx(values.var(), rel=1e-6)


def test_a_wide_output_has_its_first_columns_watched(registry: Registry, tmp_path: Path) -> None:
    width = WATCHED_COLUMNS + 8
    monitor = registered(registry, tmp_path, outputs=width)
    frame, _ = targets(20, 4)
    y = np.arange(20 * width, dtype=float).reshape(20, width)
    monitor.observe(1, frame.to_numpy(), {"predict": y}, at=1000.0)
    summary = monitor.report(2000.0).predictions
    assert summary is not None and summary.columns is not None
    assert len(summary.columns) == WATCHED_COLUMNS
    assert summary.columns[-1].output == f"predict[{WATCHED_COLUMNS - 1}]"
    assert summary.columns[-1].mean == pytest.approx(y[:, WATCHED_COLUMNS - 1].mean())
    assert summary.unwatched_columns == 8
    assert f"the first {WATCHED_COLUMNS} of {width} are watched" in (summary.note or "")


UNKNOWN_WIDTH = (
    "import numpy as np\n"
    "class Model:\n"
    "    signature = {\n"
    '        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, -1]}],\n'
    '        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, -1]}],\n'
    "    }\n"
    "    def predict(self, x):\n"
    "        return np.asarray(x, dtype=float)\n"
)
"""A model that says not how many values a row it gives: as many as it is sent."""


def test_an_output_of_unknown_width_is_summarised_by_column_once_it_has_two(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "model.py"
    path.write_text(UNKNOWN_WIDTH)
    version = register_model(registry, "open", path, flavor="python")
    one = ModelMonitor(version, None, MonitorConfig())
    one.observe(1, None, {"predict": np.array([[1.0], [3.0]])}, at=1000.0)
    single = one.report(2000.0).predictions
    assert single is not None and single.columns is None  # one value a row: as ever
    assert (single.count, single.mean, single.variance) == (2, 2.0, 1.0)
    assert "columns" not in single.to_dict()
    wide = ModelMonitor(version, None, MonitorConfig())
    y = np.arange(3.0 * (WATCHED_COLUMNS + 2)).reshape(3, WATCHED_COLUMNS + 2)
    wide.observe(1, None, {"predict": y[:, :2]}, at=1000.0)
    two = wide.report(2000.0).predictions
    assert two is not None and two.columns is not None
    assert [(c.output, c.mean) for c in two.columns] == [
        ("predict[0]", y[:, 0].mean()),
        ("predict[1]", y[:, 1].mean()),
    ]
    wide.observe(1, None, {"predict": y}, at=1000.0)
    many = wide.report(2000.0).predictions
    assert many is not None and many.columns is not None
    assert len(many.columns) == WATCHED_COLUMNS and many.unwatched_columns == 2


async def test_the_api_and_metrics_carry_every_column(registry: Registry, tmp_path: Path) -> None:
    registered(registry, tmp_path)
    ridge = tmp_path / "one.joblib"
    frame, y = targets(300, 5)
    joblib.dump(LinearRegression().fit(frame, y[:, 0]), ridge)
    register_model(registry, "one", ridge, reference=frame, aliases=["production"])
    live, _ = targets(60, 6)
    async with monitored(registry) as served:
        for model in ("multi", "one"):
            reply = await served.client.post(
                f"/predict/{model}", json={"data": live.values.tolist()}
            )
            assert reply.status_code == 200, reply.text
        answered = np.asarray(reply.json()["predictions"])
        multi_reply = await served.client.post("/predict/multi", json={"data": [[0, 0, 0, 0]]})
        assert multi_reply.status_code == 200
        await asyncio.to_thread(served.monitor.flush)
        report = (await served.client.get("/api/monitoring/multi")).json()
        dashboard = (await served.client.get("/api/dashboard")).json()
        text = (await served.client.get("/metrics")).text
    predictions = report["predictions"]
    assert [c["output"] for c in predictions["columns"]] == [
        "predict[0]",
        "predict[1]",
        "predict[2]",
    ]
    assert [c["count"] for c in predictions["columns"]] == [61, 61, 61]
    assert predictions["mean"] is None and predictions["variance"] is None
    shown = next(m for m in dashboard["models"] if m["name"] == "multi")["predictions"]
    assert shown["columns"] == predictions["columns"]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name in ("modelpilot_prediction_mean", "modelpilot_prediction_variance")
        for s in family.samples
    }
    multi = {k: v for k, v in samples.items() if ("model", "multi") in k[1]}
    assert sorted(dict(labels)["output"] for name, labels in multi if name.endswith("mean")) == [
        "predict[0]",
        "predict[1]",
        "predict[2]",
    ]
    assert len(multi) == 6  # mean and variance of each column, none without its column
    column = (("model", "multi"), ("output", "predict[2]"), ("version", "1"))
    assert multi[("modelpilot_prediction_mean", column)] == pytest.approx(
        predictions["columns"][2]["mean"]
    )
    # A prediction of one value a row keeps its series as they were: model and version.
    one = (("model", "one"), ("version", "1"))
    assert samples[("modelpilot_prediction_mean", one)] == pytest.approx(answered.mean())
    assert ("modelpilot_prediction_variance", one) in samples
