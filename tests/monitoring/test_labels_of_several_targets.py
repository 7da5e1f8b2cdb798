"""A regressor of several targets takes a label of one number a target, and its MAE and RMSE
pool every target's errors, as scikit-learn averages them over the targets. A single number
was scored against the first target alone (its MAE exported as the model's), and the full
label of a row was refused as "2 labels for 1 row"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import joblib
import jsonschema
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error

from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored

FEATURES = [f"x{i}" for i in range(10)]


@pytest.fixture
async def served(
    registry: Registry, tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> AsyncIterator[Served]:
    """``multi``: a linear regression of two targets, registered with reference data."""
    x, y = diabetes_data
    path = tmp_path / "multi.joblib"
    joblib.dump(LinearRegression().fit(x, np.column_stack([y, y * 0.5 + 3])), path)
    register_model(registry, "multi", path, reference=pd.DataFrame(x[:100], columns=FEATURES))
    async with monitored(registry, performance_min_labels=20) as it:
        yield it


async def predict(served: Served, rows: np.ndarray) -> tuple[str, list[list[float]]]:
    reply = await served.client.post("/predict/multi", json={"data": rows.tolist()})
    assert reply.status_code == 200, reply.text
    return reply.json()["id"], reply.json()["predictions"]


async def test_a_label_of_one_number_a_target_is_scored_on_every_target(
    served: Served, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = diabetes_data
    truth = np.column_stack([y, y * 0.5 + 3])[:40] + np.linspace(-20, 20, 40)[:, None]
    answered = [await predict(served, x[i : i + 1]) for i in range(40)]
    predicted = np.array([rows[0] for _, rows in answered])
    ids = [rid for rid, _ in answered]
    # A row's targets as they are, or in a list of rows, as for a request of several rows.
    one = {"request_id": ids[0], "label": truth[0].tolist()}
    assert (await served.client.post("/api/feedback/multi", json=one)).json()["accepted"] == 1
    rows = {"request_id": ids[1], "label": [truth[1].tolist()]}
    assert (await served.client.post("/api/feedback/multi", json=rows)).json()["accepted"] == 1
    rest = [{"request_id": i, "label": t.tolist()} for i, t in zip(ids[2:], truth[2:], strict=True)]
    reply = await served.client.post("/api/feedback/multi", json={"labels": rest})
    assert reply.json() == {"accepted": 38, "unknown": []}

    performance = (await served.client.get("/api/monitoring/multi")).json()["performance"]
    assert performance["labels"] == 40 and performance["unscored"] == 0
    assert performance["current"]["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    rmse = np.sqrt(mean_squared_error(truth, predicted))
    assert performance["current"]["rmse"] == pytest.approx(rmse)
    # Not the first target's alone, which the model's MAE used to be.
    assert performance["current"]["mae"] != pytest.approx(
        mean_absolute_error(truth[:, 0], predicted[:, 0])
    )
    metrics = (await served.client.get("/metrics")).text
    assert 'modelpilot_model_performance{metric="mae",model="multi",version="1"}' in metrics


async def test_a_label_that_is_not_one_number_a_target_is_refused(
    served: Served, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = diabetes_data
    single, _ = await predict(served, x[:1])
    several, _ = await predict(served, x[1:4])
    refused = [
        # One number for a row of two targets: it was scored against the first alone.
        (single, 197.0, "label 197.0 is not a list of 2 numbers, as a regression of 2 targets"),
        (single, [97.0], "label [97.0] has 1 value(s); the model predicts 2 targets a row"),
        (single, [97.0, "51.5"], 'label "51.5" is not a finite number'),
        (several, [97.0, 51.5, 20.0], "row 0: label 97.0 is not a list of 2 numbers"),
        (several, [[97.0, 51.5]], "predicted 3 row(s) of 2 values (targets) but got 1 label"),
    ]
    for request_id, label, said in refused:
        body = {"request_id": request_id, "label": label}
        reply = await served.client.post("/api/feedback/multi", json=body)
        assert reply.status_code == 422, (label, reply.text)
        assert said in reply.json()["error"], reply.text
    body = {"request_id": several, "label": [[97.0, 51.5], [150.0, 78.0], [80.0, 43.0]]}
    assert (await served.client.post("/api/feedback/multi", json=body)).json()["accepted"] == 3


def test_the_pooled_errors_are_judged_against_the_stated_ones() -> None:
    """A row's errors are resampled together, and a rise of the pooled MAE and RMSE past
    their stated figures flags, as a single target's does."""
    window = PerformanceWindow(
        "regression",
        [],
        {"mae": 1.0, "rmse": 1.0},
        None,
        1000,
        3600.0,
        PerformanceThresholds(min_labels=30),
        target_scale=10.0,
    )
    rng = np.random.default_rng(0)
    predicted = (10.0, 20.0, 30.0)
    for i in range(40):
        label = window.checked([v + rng.choice([-1.0, 1.0]) for v in predicted], 3)
        window.add(label, predicted, None, at=None, key=i)
    report = window.report()
    assert report is not None and report.current == pytest.approx({"mae": 1.0, "rmse": 1.0})
    assert report.concept_drift is False and report.judged
    for i in range(40):
        window.add((15.0, 25.0, 35.0), predicted, None, at=None, key=i)  # replaces each
    report = window.report()
    assert report is not None and report.labels == 40
    assert report.current == pytest.approx({"mae": 5.0, "rmse": 5.0})
    assert report.concept_drift is True and sorted(report.degraded) == ["mae", "rmse"]


async def test_the_feedback_body_documents_a_label_of_several_targets(served: Served) -> None:
    spec = (await served.client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/feedback/{model}"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    for good in (
        {"request_id": "a", "label": [97.0, 51.5]},
        {"request_id": "a", "label": [[97.0, 51.5], [150.0, 78.0]]},
        {"labels": [{"request_id": "a", "label": [[97.0, 51.5]]}]},
    ):
        jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"request_id": "a", "label": [["x", 1.0]]}, schema)
