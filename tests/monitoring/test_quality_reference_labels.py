"""The labels' distribution is judged against the reference labels (``--target``) only: a
version registered with reference data but no target has its quality shown and not judged.
Against the model's own predictions on the reference data, a KMeans whose labels were its
rows' true segments raised a critical concept drift (Jensen-Shannon distance 1.0)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored, reference_traffic

NOT_JUDGED = "quality not judged: the version has no reference figures to judge its labels against"


async def test_a_clusterer_registered_without_a_target_is_not_judged_by_its_own_predictions(
    registry: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    model = KMeans(n_clusters=3, n_init=3, random_state=0).fit(iris_frame.to_numpy())
    path = tmp_path / "segments.joblib"
    joblib.dump(model, path)
    register_model(registry, "segments", path, reference=iris_frame, aliases=["production"])
    async with monitored(registry, performance_min_labels=20) as served:
        answered = []
        for row in reference_traffic(iris_frame, 60, seed=3):
            reply = await served.client.post("/predict/segments", json={"data": row.tolist()})
            answered.append(reply.json()["id"])
        # Clusters 0 and 1 only, where the model answers all three about alike: against its
        # own predictions on the reference, a label shift certain at 60 labels.
        labels = [{"request_id": i, "label": n % 2} for n, i in enumerate(answered)]
        reply = await served.client.post("/api/feedback/segments", json={"labels": labels})
        assert reply.json()["accepted"] == 60
        report = (await served.client.get("/api/monitoring/segments")).json()
        alerts = (await served.client.get("/api/alerts")).json()
    performance = report["performance"]
    assert performance["label_shift"] is None and performance["label_shift_p_value"] is None
    assert report["concept_drift"] is False and performance["judged"] is False
    assert report["quality_unjudged"].startswith(NOT_JUDGED)
    assert performance["reason"] == report["quality_unjudged"]
    assert not [a for a in _listed(alerts) if a.get("rule") == "concept_drift"]


async def test_a_registered_target_still_gives_the_label_shift(
    registry: Registry,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    reference = iris_frame.assign(species=iris_target)
    register_model(
        registry,
        "iris",
        iris_model_path,
        reference=reference,
        target="species",
        aliases=["production"],
    )
    async with monitored(registry, performance_min_labels=20) as served:
        answered = []
        for row in reference_traffic(iris_frame, 60, seed=4):
            reply = await served.client.post("/predict/iris", json={"data": row.tolist()})
            answered.append(reply.json()["id"])
        labels = [{"request_id": i, "label": 0} for i in answered]  # one class only
        await served.client.post("/api/feedback/iris", json={"labels": labels})
        report = (await served.client.get("/api/monitoring/iris")).json()
    performance = report["performance"]
    assert performance["label_shift"] is not None and performance["label_shift"] > 0.5
    assert "label distribution moved" in performance["reason"]
    assert report["concept_drift"] is True and report["quality_unjudged"] is None


async def test_a_regressor_of_several_targets_is_told_to_state_a_figure(
    registry: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """``--target`` takes one column: the advice to register with it could not be followed."""
    x = iris_frame.to_numpy()
    model = LinearRegression().fit(x[:, :2], x[:, 2:])
    path = tmp_path / "two.joblib"
    joblib.dump(model, path)
    register_model(registry, "two", path, reference=iris_frame.iloc[:, :2], aliases=["production"])
    async with monitored(registry, performance_min_labels=20) as served:
        answered = []
        for row in x[:40]:
            reply = await served.client.post("/predict/two", json={"data": row[:2].tolist()})
            answered.append((reply.json()["id"], row[2:].tolist()))
        labels = [{"request_id": i, "label": y} for i, y in answered]
        reply = await served.client.post("/api/feedback/two", json={"labels": labels})
        assert reply.json()["accepted"] == 40, reply.text
        report = (await served.client.get("/api/monitoring/two")).json()
    assert report["quality_unjudged"] == (
        NOT_JUDGED + " (state one with --metadata mae=12.5: its errors pool every target's)"
    )
    assert "--target" not in report["performance"]["reason"]


def _listed(alerts: object) -> list[dict[str, object]]:
    if isinstance(alerts, dict):
        alerts = alerts.get("alerts", [])
    assert isinstance(alerts, list)
    return [a for a in alerts if isinstance(a, dict)]
