"""A converted model answers in the original's dtypes, and parity compares them: a classifier
of booleans converted by skl2onnx answered int64 0 and 1 under its BOOL signature, which
parity, casting them back to bool, let through."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.registry.store import Registry
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.convert import ConvertedRuntime, check_parity, converter_for
from modelpilot.runtimes.onnx import OnnxRuntime
from modelpilot.runtimes.sklearn import SklearnRuntime
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored


class Labels(Runtime):
    """Answers whether each row's first value is positive, as booleans or as 0 and 1."""

    flavor = "test"

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype
        self.signature = Signature(
            inputs=(TensorSpec("input-0", "FP64", (-1, 2)),),
            outputs=(TensorSpec("predict", "BOOL", (-1,)),),
        )

    @classmethod
    def load(cls, path, signature=None, **options):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        return {"predict": (batch["input-0"][:, 0] > 0).astype(self.dtype)}


def test_labels_of_another_dtype_fail_parity_though_their_values_agree() -> None:
    sample = np.random.default_rng(0).normal(size=(50, 2))
    parity = check_parity(Labels(bool), Labels(np.int64), sample)
    assert not parity.ok
    assert parity.reason == "output 'predict' is INT64, the original's BOOL"


def _booleans() -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x[:300], y[:300].astype(bool))
    return model, x, y.astype(bool)


def test_a_converted_classifier_of_booleans_answers_booleans(tmp_path: Path) -> None:
    model, x, _ = _booleans()
    original = SklearnRuntime(model)
    original.signature = original.infer_signature(x)
    conversion = converter_for(original, x.shape[1])
    assert conversion is not None
    (tmp_path / "bool.onnx").write_bytes(conversion[0](np.float64))
    session = OnnxRuntime.load(tmp_path / "bool.onnx")
    assert isinstance(session, OnnxRuntime)
    fast = ConvertedRuntime(session, original.signature)
    labels = fast.predict({"input-0": x})["predict"]
    assert labels.dtype == np.bool_
    np.testing.assert_array_equal(labels, model.predict(x))
    assert check_parity(original, fast, x).ok


async def test_a_classifier_of_booleans_served_by_onnx_answers_and_is_watched_as_booleans(
    registry: Registry, tmp_path: Path
) -> None:
    """Served by ONNX Runtime it answered INT64 1 and 0: the monitor counted every
    prediction as "(unknown)", read accuracy 0 and raised a critical concept drift."""
    model, x, y = _booleans()
    joblib.dump(model, tmp_path / "bool.joblib")
    names = [f"f{i}" for i in range(x.shape[1])]
    reference = pd.DataFrame(x[300:450], columns=names).assign(target=y[300:450])
    register_model(registry, "flag", tmp_path / "bool.joblib", reference=reference, target="target")
    rows, truth = x[450:], y[450:]
    async with monitored(registry, performance_min_labels=20) as served:
        assert isinstance((await served.engine.get_model("flag")).runtime, ConvertedRuntime)
        ids = []
        for row in rows:
            reply = await served.client.post("/v2/models/flag/infer", json=_request(row))
            assert reply.status_code == 200, reply.text
            output = reply.json()["outputs"][0]
            assert output["datatype"] == "BOOL" and isinstance(output["data"][0], bool)
            ids.append(reply.json()["id"])
        served.monitor.flush()
        await _labelled(served.client, ids, truth.tolist())
        report = (await served.client.get("/api/monitoring/flag")).json()
    predicted = model.predict(rows)
    counted = report["predictions"]["classes"]
    assert counted == {"False": int((~predicted).sum()), "True": int(predicted.sum())}
    current = report["performance"]["current"]
    assert current["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert current["f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert not report["concept_drift"]


def _request(row: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "input-0", "datatype": "FP64", "shape": [1, len(row)], "data": row.tolist()}
        ]
    }


async def _labelled(client: httpx.AsyncClient, ids: list[str], truth: list[bool]) -> None:
    labels = [{"request_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
    reply = await client.post("/api/feedback/flag", json={"labels": labels})
    assert reply.json() == {"accepted": len(ids), "unknown": []}, reply.text
