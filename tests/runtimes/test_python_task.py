"""A ``.py`` model's ``task`` attribute: a regressor that answers whole numbers says so, and is
registered, measured and watched as one (MAE and RMSE, its predictions binned), where it was
watched as one class per value with accuracy and F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from modelpilot.errors import ArtifactError
from modelpilot.registry.store import Registry
from modelpilot.runtimes.python import PythonRuntime
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored

COUNTS = """
import numpy as np

class Model:
    task = {task!r}

    def predict(self, x):
        return np.round(152 + 900 * x[:, 2] + 500 * x[:, 8]).astype(np.int64)
"""


def _model(tmp_path: Path, task: str) -> Path:
    path = tmp_path / "counts.py"
    path.write_text(COUNTS.format(task=task))
    return path


def test_the_task_attribute_is_the_signature_s(tmp_path: Path) -> None:
    runtime = PythonRuntime.load(_model(tmp_path, "regression"))
    assert runtime.signature.task == "regression"
    inferred = runtime.infer_signature(np.zeros((3, 10)))
    assert inferred.outputs[0].datatype == "INT64" and inferred.task == "regression"


def test_a_task_that_is_none_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as refused:
        PythonRuntime.load(_model(tmp_path, "regressor"))
    assert str(refused.value) == (
        "Model.task is 'regressor'; it says what the model's prediction is: "
        "'classification' or 'regression'"
    )


DECLARED = """
import numpy as np

class Model:
    signature = {{
        "inputs": [{{"name": "x", "datatype": "FP64", "shape": [-1, 10]}}],
        "outputs": [{{"name": "predict", "datatype": "INT64", "shape": [-1]}}],
        "extra": {{"task": {task!r}}},
    }}

    def predict(self, x):
        return np.round(x[:, 0]).astype(np.int64)
"""


def test_a_declared_signature_may_state_the_task(tmp_path: Path) -> None:
    (tmp_path / "declared.py").write_text(DECLARED.format(task="regression"))
    assert PythonRuntime.load(tmp_path / "declared.py").signature.task == "regression"
    (tmp_path / "declared.py").write_text(DECLARED.format(task="counts"))
    with pytest.raises(ArtifactError, match="extra task is 'counts', not 'classification' or"):
        PythonRuntime.load(tmp_path / "declared.py")


async def test_a_regressor_of_whole_numbers_is_watched_as_a_regressor(
    registry: Registry, tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = diabetes_data
    names = [f"f{i}" for i in range(10)]
    reference = pd.DataFrame(x[:300], columns=names).assign(y=y[:300])
    version = register_model(
        registry, "counts", _model(tmp_path, "regression"), reference=reference, target="y"
    )
    assert set(version.metadata["reference_metrics"]) == {"mae", "rmse"}
    assert not version.metadata.get("monitoring_notes")
    rows, truth = x[300:], y[300:]
    async with monitored(registry, performance_min_labels=20) as served:
        ids = []
        for row in rows:
            reply = await served.client.post("/predict/counts", json={"data": row.tolist()})
            assert reply.status_code == 200, reply.text
            ids.append(reply.json()["id"])
        served.monitor.flush()
        labels = [{"request_id": i, "label": t} for i, t in zip(ids, truth.tolist(), strict=True)]
        reply = await served.client.post("/api/feedback/counts", json={"labels": labels})
        assert reply.json() == {"accepted": len(ids), "unknown": []}, reply.text
        report = (await served.client.get("/api/monitoring/counts")).json()
    predicted = np.round(152 + 900 * rows[:, 2] + 500 * rows[:, 8])
    assert report["predictions"]["kind"] == "regression"
    assert "classes" not in report["predictions"]
    histogram = report["predictions"]["histogram"]
    assert sum(histogram["counts"]) + histogram["below"][0] + histogram["above"][0] == len(rows)
    assert report["predictions"]["mean"] == pytest.approx(predicted.mean())
    current = report["performance"]["current"]
    assert set(current) == {"mae", "rmse"}
    assert current["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted))
    assert current["rmse"] == pytest.approx(metrics.root_mean_squared_error(truth, predicted))
