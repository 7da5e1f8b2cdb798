"""Delayed labels for a regression model: MAE and RMSE over the window, judged against the
errors stored at registration; labels that are not numbers are refused, not kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

FEATURES = [f"x{i}" for i in range(10)]


@pytest.fixture
async def client(
    registry: Registry, forest_model_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> AsyncIterator[httpx.AsyncClient]:
    x, y = diabetes_data
    reference = pd.DataFrame(x, columns=FEATURES).assign(progression=y)
    register_model(registry, "forest", forest_model_path, reference=reference, target="progression")
    settings = make_settings(registry, performance_min_labels=20)
    engine = InferenceEngine(registry, settings)
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    await engine.start()
    app = create_app(engine, settings, monitoring)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http
    await engine.stop()
    monitoring.stop()


async def _predict(client: httpx.AsyncClient, rows: np.ndarray) -> list[tuple[str, float]]:
    answers = []
    for row in rows:
        reply = (await client.post("/predict/forest", json={"data": row.tolist()})).json()
        answers.append((reply["id"], reply["predictions"][0]))
    return answers


async def test_errors_over_the_window_and_a_rise_flags_concept_drift(
    client: httpx.AsyncClient, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = diabetes_data
    answers = await _predict(client, x[:60])
    first = {rid: float(truth) for (rid, _), truth in zip(answers[:30], y[:30], strict=True)}
    reply = await client.post(
        "/api/feedback/forest",
        json={"labels": [{"request_id": k, "label": v} for k, v in first.items()]},
    )
    assert reply.json() == {"accepted": 30, "unknown": []}
    performance = (await client.get("/api/monitoring/forest")).json()["performance"]
    errors = np.array([p for _, p in answers[:30]]) - y[:30]
    assert performance["current"]["mae"] == pytest.approx(np.abs(errors).mean())
    assert performance["current"]["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert set(performance["reference"]) == {"mae", "rmse"}
    assert performance["concept_drift"] is False

    # The next labels are far from what was predicted: the window's errors rise past 20%.
    for (rid, _), truth in zip(answers[30:], y[30:60], strict=True):
        reply = await client.post(
            "/api/feedback/forest", json={"request_id": rid, "label": float(truth) + 150.0}
        )
        assert reply.status_code == 200, reply.text
    performance = (await client.get("/api/monitoring/forest")).json()["performance"]
    assert performance["labels"] == 60
    assert performance["current"]["mae"] > 1.2 * performance["reference"]["mae"]
    assert performance["concept_drift"] is True and "mae" in performance["degraded"]
    active = (await client.get("/api/alerts")).json()["active"]
    assert ("concept_drift", "forest:1") in [(a["rule"], a["model"]) for a in active]
    metrics = (await client.get("/metrics")).text
    mae = performance["current"]["mae"]
    assert f'modelpilot_model_performance{{metric="mae",model="forest",version="1"}} {mae}' in (
        metrics
    )


async def test_a_label_that_is_not_a_number_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = diabetes_data
    (first, _), (second, _) = await _predict(client, x[:2])
    for label in ("abc", None, [1.0, 2.0], {"value": 1}, "nan", "inf", "-Infinity", "1e400", "1.5"):
        body = {
            "labels": [
                {"request_id": first, "label": 100.0},
                {"request_id": second, "label": label},
            ]
        }
        reply = await client.post("/api/feedback/forest", json=body)
        assert reply.status_code == 422, (label, reply.text)  # a list for one row was 400
        assert second in reply.json()["error"], reply.text
    reply = await client.post("/api/feedback/forest", json={"request_id": second, "label": 151.5})
    assert reply.json() == {"accepted": 1, "unknown": []}
    performance = (await client.get("/api/monitoring/forest")).json()["performance"]
    # The refused calls' good labels were not kept either; the report is still computed.
    assert performance["labels"] == 1
    assert performance["current"]["mae"] >= 0


async def test_huge_labels_leave_the_errors_finite_and_the_alert_readable(
    client: httpx.AsyncClient, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    """Labels of 1e200 and 1e308 (a unit or parsing slip in the client) made RMSE inf: null in
    /api/monitoring, +Inf in /metrics, and an alert whose reason held a 200-digit number."""
    x, y = diabetes_data
    answers = await _predict(client, x[:40])
    # A dozen of the forty: three among forty may be luck, to the bootstrap that judges a
    # small window (a resample without them, one in twenty, is as good as the reference).
    truths: list[object] = [*[1e200] * 11, 1e308, *y[12:40].tolist()]
    labels = [{"request_id": rid, "label": t} for (rid, _), t in zip(answers, truths, strict=True)]
    reply = await client.post("/api/feedback/forest", json={"labels": labels})
    assert reply.json() == {"accepted": 40, "unknown": []}
    performance = (await client.get("/api/monitoring/forest")).json()["performance"]
    mae, rmse = performance["current"]["mae"], performance["current"]["rmse"]
    assert mae == pytest.approx(1e308 / 40) and rmse == pytest.approx(1e308 / 40**0.5)
    assert performance["concept_drift"] is True
    assert performance["reason"].startswith("mae 2.5e+306 against ")
    assert len(performance["reason"]) < 200
    metrics = (await client.get("/metrics")).text
    exported = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("modelpilot_model_performance{")
    ]
    assert len(exported) == 2 and all(np.isfinite(exported)), exported
    alert = next(a for a in (await client.get("/api/alerts")).json()["active"])
    assert alert["rule"] == "concept_drift" and "rmse 1.581e+307 against " in alert["message"]


async def test_a_number_written_as_text_is_refused_naming_the_request_and_the_value(
    client: httpx.AsyncClient, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    """A label of "1.5" was taken as 1.5, though the README says a regression's label is a
    finite number."""
    x, _ = diabetes_data
    (one, _), (two, _) = await _predict(client, x[:2])
    reply = await client.post("/api/feedback/forest", json={"request_id": one, "label": "1.5"})
    assert reply.status_code == 422
    assert reply.json()["error"] == (
        f'request {one!r}: label "1.5" is not a finite number, as a regression needs '
        "(send a JSON number, not text)"
    )
    # One request of two rows, labelled with a list: the row is named too.
    both = (await client.post("/predict/forest", json={"data": x[2:4].tolist()})).json()["id"]
    reply = await client.post(
        "/api/feedback/forest", json={"request_id": both, "label": [2.0, "3"]}
    )
    assert reply.status_code == 422
    assert reply.json()["error"].startswith(f'request {both!r} row 1: label "3" is not a finite')
    reply = await client.post(
        "/api/feedback/forest",
        json={"labels": [{"request_id": two, "label": 1.5}, {"request_id": one, "label": "1.5"}]},
    )
    assert reply.status_code == 422 and one in reply.json()["error"]
    reply = await client.post("/api/feedback/forest", json={"request_id": one, "label": 1.5})
    assert reply.json() == {"accepted": 1, "unknown": []}
    performance = (await client.get("/api/monitoring/forest")).json()["performance"]
    assert performance["labels"] == 1  # none of the refused calls' labels was kept


async def test_a_nan_prediction_leaves_the_errors_and_concept_drift_visible(
    registry: Registry, tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    """One NaN prediction among 60 labelled ones made MAE and RMSE NaN (null in
    /api/monitoring, NaN in /metrics) and hid concept drift until it left the window of
    1,000 labels. Labels of predictions that are no finite number are left out of the
    errors, and counted."""
    path = tmp_path / "sums.py"
    path.write_text(
        "import numpy as np\n"
        "class Model:\n"
        "    def predict(self, x):\n"
        "        x = np.asarray(x, dtype=float)\n"
        "        return np.where(x[:, 0] == -1.0, np.nan, x.sum(axis=1) * 1000)\n"
    )
    x, y = diabetes_data
    reference = pd.DataFrame(x, columns=FEATURES).assign(progression=y)
    register_model(
        registry, "sums", path, flavor="python", reference=reference, target="progression"
    )
    settings = make_settings(registry, performance_min_labels=20)
    engine = InferenceEngine(registry, settings)
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    await engine.start()
    app = create_app(engine, settings, monitoring)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            rows = x[:60].copy()
            rows[7, 0] = -1.0  # the request the model answers NaN
            ids = []
            for row in rows:
                reply = await client.post("/predict/sums", json={"data": row.tolist()})
                assert reply.status_code == 200, reply.text
                ids.append(reply.json()["id"])
            # Every label is 500 off what was predicted: far past the reference's error.
            truths = (rows.sum(axis=1) * 1000 + 500).tolist()
            labels = [{"request_id": i, "label": t} for i, t in zip(ids, truths, strict=True)]
            reply = await client.post("/api/feedback/sums", json={"labels": labels})
            assert reply.json() == {"accepted": 60, "unknown": []}
            performance = (await client.get("/api/monitoring/sums")).json()["performance"]
            assert (performance["labels"], performance["unscored"]) == (60, 1)
            assert performance["current"]["mae"] == pytest.approx(500)
            assert performance["current"]["rmse"] == pytest.approx(500)
            assert performance["concept_drift"] is True and "mae" in performance["degraded"]
            metrics = (await client.get("/metrics")).text
            assert 'modelpilot_model_performance{metric="mae",model="sums",version="1"} 500' in (
                metrics
            )
    finally:
        await engine.stop()
        monitoring.stop()
