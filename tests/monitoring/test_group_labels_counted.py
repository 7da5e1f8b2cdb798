"""Clusters and outlier flags registered without a reference are counted by class."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest

from modelpilot.registry.store import Registry
from modelpilot.runtimes.sklearn import SklearnRuntime
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored


def test_clusterers_and_outlier_detectors_name_the_labels_they_predict() -> None:
    x = np.random.default_rng(0).normal(size=(60, 3))
    kmeans = SklearnRuntime(KMeans(4, n_init=2, random_state=0).fit(x)).infer_signature()
    assert kmeans.extra["classes"] == [0, 1, 2, 3] and kmeans.task == "classification"
    flags = SklearnRuntime(IsolationForest(random_state=0).fit(x)).infer_signature(example=x)
    assert flags.extra["classes"] == [-1, 1]


async def test_a_kmeans_without_a_reference_is_counted_by_cluster(
    registry: Registry, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    model = KMeans(3, n_init=2, random_state=0).fit(x)
    path = tmp_path / "km.joblib"
    joblib.dump(model, path)
    register_model(registry, "km", path)
    rows = rng.normal(size=(20, 3))
    found, counts = np.unique(model.predict(rows), return_counts=True)
    expected = {str(c): int(n) for c, n in zip(found, counts, strict=True)}
    async with monitored(registry) as served:
        body = {
            "inputs": [
                {"name": "input-0", "datatype": "FP64", "shape": [20, 3], "data": rows.tolist()}
            ]
        }
        response = await served.client.post("/v2/models/km/infer", json=body)
        assert response.status_code == 200, response.text
        served.monitor.flush()
        report = (await served.client.get("/api/monitoring/km")).json()
        classes = report["predictions"]["classes"]
        assert {k: v for k, v in classes.items() if v} == expected
        assert "(unknown)" not in classes
        text = (await served.client.get("/metrics")).text
    series = [
        line
        for line in text.splitlines()
        if line.startswith("modelpilot_prediction_class_total{") and 'model="km"' in line
    ]
    counted = {line.split('class="')[1].split('"')[0]: float(line.split()[-1]) for line in series}
    assert {k: int(v) for k, v in counted.items() if v} == expected
