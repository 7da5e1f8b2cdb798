"""Registration and monitoring of models as common tools make them: booleans beside numbers,
skl2onnx's regressors (an ``[N, 1]`` output) and classifiers (``label`` and
``probabilities``), each measured on its reference and watched live like the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored


async def _predict(client: httpx.AsyncClient, model: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await client.post(f"/predict/{model}", json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def _labelled(
    client: httpx.AsyncClient, model: str, ids: list[str], truth: list[Any]
) -> None:
    labels = [{"request_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
    reply = await client.post(f"/api/feedback/{model}", json={"labels": labels})
    assert reply.json() == {"accepted": len(ids), "unknown": []}, reply.text


def _flags(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "flag": rng.random(rows) < 0.4})
    return frame, (frame.x + frame.flag > 0.5).astype(int).to_numpy()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
async def test_a_boolean_feature_of_a_numeric_model_is_1_or_0_to_it(
    registry: Registry, tmp_path: Path, suffix: str
) -> None:
    """A reference with a column of booleans (a CSV's True and False, a Parquet file's
    booleans) was refused for a model fitted on it: "input 'input-0' holds strings", as the
    float and boolean columns made one array of objects."""
    frame, y = _flags(300, seed=0)
    model = LogisticRegression().fit(frame, y)
    joblib.dump(model, tmp_path / "flags.joblib")
    reference = tmp_path / f"ref{suffix}"
    if suffix == ".csv":
        frame.assign(y=y).to_csv(reference, index=False)
    else:
        frame.assign(y=y).to_parquet(reference)
    version = register_model(
        registry, "flags", tmp_path / "flags.joblib", reference=reference, target="y"
    )
    assert version.signature.inputs[0].datatype == "FP64"
    assert version.signature.feature_datatypes is None
    expected = accuracy_score(y, model.predict(frame))
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(expected)
    profile = registry.reference_profile("flags", 1)
    assert profile is not None
    flag = next(f for f in profile.features if f.name == "flag")
    assert flag.kind == "categorical"  # a boolean feature stays the categories True and False
    async with monitored(registry) as served:
        rows = [
            {"x": float(x), "flag": bool(f)}
            for x, f in zip(frame.x[:20], frame.flag[:20], strict=True)
        ]
        as_json = await _predict(served.client, "flags", {"instances": rows})
        as_numbers = await _predict(
            served.client, "flags", {"data": frame[:20].to_numpy(dtype=float).tolist()}
        )
    assert as_json["predictions"] == as_numbers["predictions"] == model.predict(frame[:20]).tolist()


def test_booleans_with_missing_values_are_numbers_the_model_may_take_missing(
    registry: Registry, tmp_path: Path
) -> None:
    """A CSV's True and False with empty cells reads as objects (booleans and NaN), which
    are no text either: a model that copes with missing values takes them as 1.0, 0.0, NaN."""
    frame, y = _flags(400, seed=1)
    flags = frame.flag.astype(object)
    flags[::7] = np.nan
    numbers = frame.assign(flag=flags.astype(float))
    model = HistGradientBoostingClassifier(max_iter=20).fit(numbers, y)
    joblib.dump(model, tmp_path / "holes.joblib")
    path = tmp_path / "ref.csv"
    frame.assign(flag=flags, y=y).to_csv(path, index=False)
    assert pd.read_csv(path).flag.dtype == object  # (what the CSV reads as)
    version = register_model(
        registry, "holes", tmp_path / "holes.joblib", reference=path, target="y"
    )
    assert version.signature.inputs[0].datatype == "FP64" and version.signature.allow_nan
    expected = accuracy_score(y, model.predict(numbers))
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(expected)
    # And served so: JSON's true and null in one column (pandas' to_dict of such a column)
    # were refused as "holds strings", though the same rows registered.
    rows = numbers.iloc[:14]
    records = frame.assign(flag=flags).iloc[:14].to_dict("records")
    records = [{k: None if v != v else v for k, v in r.items()} for r in records]
    assert {type(r["flag"]) for r in records} == {bool, type(None)}
    data = [[r["x"], r["flag"]] for r in records]

    async def scored() -> tuple[dict[str, Any], dict[str, Any]]:
        async with monitored(registry) as served:
            return (
                await _predict(served.client, "holes", {"instances": records}),
                await _predict(served.client, "holes", {"data": data}),
            )

    for answer in asyncio.run(scored()):
        assert answer["predictions"] == model.predict(rows).tolist()


async def test_an_onnx_regressor_of_one_column_is_measured_and_watched_as_one_value_a_row(
    registry: Registry, tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    """skl2onnx's regressors answer ``[N, 1]`` (its output ``variable``): registration gave
    them no reference MAE and RMSE, and no profile of their predictions, so neither concept
    drift nor prediction drift could be judged, and nothing said so."""
    x, y = diabetes_data
    x32 = x.astype(np.float32)
    model = LinearRegression().fit(x32[:300], y[:300])
    path = tmp_path / "lr.onnx"
    path.write_bytes(to_onnx(model, x32[:1]).SerializeToString())
    names = [f"x{i}" for i in range(x.shape[1])]
    reference = pd.DataFrame(x[300:], columns=names).assign(target=y[300:])
    version = register_model(registry, "lr", path, reference=reference, target="target")
    assert version.signature.main_output is not None
    assert version.signature.main_output.shape == (-1, 1)
    predicted = model.predict(x32[300:])
    metrics = version.metadata["reference_metrics"]
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y[300:], predicted), rel=1e-4)
    profile = registry.reference_profile("lr", 1)
    assert profile is not None and profile.predictions is not None
    assert sum(profile.predictions.bin_counts) == len(predicted)
    async with monitored(registry, performance_min_labels=20) as served:
        ids, answers = [], []
        for row in x[:60]:
            answer = await _predict(served.client, "lr", {"data": row.tolist()})
            ids.append(answer["id"])
            # One value a row in /predict's predictions, as other regressors answer (it was a
            # list of one), and the model's own [N, 1] in its outputs.
            (value,) = answer["predictions"]
            assert isinstance(value, float)
            assert answer["outputs"]["variable"] == [[value]]
            answers.append(value)
        served.monitor.flush()
        await _labelled(served.client, "lr", ids, y[:60].tolist())
        watched = (await served.client.get("/api/monitoring/lr")).json()
    assert watched["predictions"]["drift"] is not None
    performance = watched["performance"]
    assert performance["reference"]["mae"] == pytest.approx(metrics["mae"])
    live = mean_absolute_error(y[:60], answers)
    assert performance["current"]["mae"] == pytest.approx(live, rel=1e-6)


@pytest.mark.parametrize("strings", [False, True])
async def test_an_skl2onnx_classifier_gets_its_auc_at_registration_and_live(
    registry: Registry, tmp_path: Path, strings: bool
) -> None:
    """skl2onnx names a classifier's outputs ``label`` and ``probabilities``; only one named
    ``predict_proba`` was scored, so its AUC was missing at registration and live alike
    (and its labels were not checked against its classes, which its graph states)."""
    data = load_breast_cancer()
    x = data.data[:, :8].astype(np.float32)
    y = np.array(["benign", "malignant"])[data.target] if strings else data.target
    model = LogisticRegression(max_iter=2000).fit(x[:300], y[:300])
    path = tmp_path / "bc.onnx"
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    path.write_bytes(onx.SerializeToString())
    names = [f"f{i}" for i in range(8)]
    reference = pd.DataFrame(x[300:], columns=names).assign(label=y[300:])
    version = register_model(registry, "bc", path, reference=reference, target="label")
    assert version.signature.extra["classes"] == model.classes_.tolist()
    proba = model.predict_proba(x[300:])[:, 1]
    metrics = version.metadata["reference_metrics"]
    assert metrics["auc"] == pytest.approx(roc_auc_score(y[300:], proba), abs=1e-3)
    rows = x[:100]
    async with monitored(registry, performance_min_labels=20) as served:
        ids = []
        for row in rows:
            answer = await _predict(served.client, "bc", {"data": row.tolist()})
            ids.append(answer["id"])
        served.monitor.flush()
        await _labelled(served.client, "bc", ids, y[:100].tolist())
        reply = await served.client.post(
            "/v2/models/bc/infer",
            json={
                "inputs": [
                    {
                        "name": "X",
                        "datatype": "FP32",
                        "shape": list(rows.shape),
                        "data": rows.ravel().tolist(),
                    }
                ]
            },
        )
        performance = (await served.client.get("/api/monitoring/bc")).json()["performance"]
    outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
    served_proba = np.reshape(outputs["probabilities"], (-1, 2))[:, 1]
    assert performance["reference"]["auc"] == pytest.approx(metrics["auc"])
    assert performance["current"]["auc"] == pytest.approx(roc_auc_score(y[:100], served_proba))


async def test_an_onnx_classifier_registered_without_its_classes_gets_no_auc(
    registry: Registry, tmp_path: Path
) -> None:
    """Registered before ONNX graphs' classes were read, its signature names no classes: its
    probabilities' columns were scored against the classes in the order its reference
    predictions counted them, and read AUC 0.244 where scikit-learn gives 0.756. With no
    classes to pair the columns with, there is no AUC, as at its registration."""
    from sqlalchemy import update

    from modelpilot.registry import schema

    data = load_breast_cancer()
    x = data.data[:, :8].astype(np.float32)
    y = np.array(["yes", "no"])[data.target]  # "no", the second column, is the commoner
    model = LogisticRegression(max_iter=2000).fit(x[:300], y[:300])
    path = tmp_path / "bc.onnx"
    path.write_bytes(
        to_onnx(model, x[:1], options={id(model): {"zipmap": False}}).SerializeToString()
    )
    reference = pd.DataFrame(x[300:], columns=[f"f{i}" for i in range(8)]).assign(label=y[300:])
    version = register_model(registry, "bc", path, reference=reference, target="label")
    old = version.signature.to_dict()
    del old["extra"]["classes"]
    with registry._engine.begin() as conn:  # as the release before stored it
        conn.execute(update(schema.versions).values(signature=old))
    async with monitored(registry, performance_min_labels=20) as served:
        ids = [(await _predict(served.client, "bc", {"data": r.tolist()}))["id"] for r in x[:100]]
        served.monitor.flush()
        await _labelled(served.client, "bc", ids, y[:100].tolist())
        performance = (await served.client.get("/api/monitoring/bc")).json()["performance"]
    assert performance["current"]["accuracy"] == pytest.approx(
        accuracy_score(y[:100], model.predict(x[:100]))
    )
    assert "auc" not in performance["current"]


def test_a_regressor_of_several_values_a_row_is_said_to_be_unwatched(
    registry: Registry, tmp_path: Path
) -> None:
    """Its predictions cannot be profiled as one value a row: that was left unsaid, and its
    target column silently unused."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 3))
    joblib.dump(LinearRegression().fit(x, np.c_[x.sum(axis=1), x[:, 0]]), tmp_path / "two.joblib")
    reference = pd.DataFrame(x, columns=["a", "b", "c"]).assign(t=x.sum(axis=1))
    version = register_model(
        registry, "two", tmp_path / "two.joblib", reference=reference, target="t"
    )
    assert "reference_metrics" not in version.metadata
    (note,) = version.metadata["monitoring_notes"]
    assert "predictions is not watched" in note and "target column is unused" in note
