"""A request that asks for some outputs only is watched like any other."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from tests.monitoring.conftest import Served, reference_traffic


async def test_a_request_for_probabilities_alone_is_monitored_and_takes_labels(
    served: Served, iris_frame: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    """The monitor counts "the prediction" (``predict``) and labels join it, so it is
    computed for a request that asked for ``predict_proba`` alone, and not answered."""
    client, monitor = served.client, served.monitor
    rows = reference_traffic(iris_frame, 5, seed=4)
    frame = pd.DataFrame(rows, columns=iris_frame.columns)
    body = {
        "id": "probabilities-only",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [5, 4], "data": rows.tolist()}],
        "outputs": [{"name": "predict_proba"}],
    }
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [o["name"] for o in outputs] == ["predict_proba"]
    np.testing.assert_allclose(
        np.reshape(outputs[0]["data"], (5, 3)), iris_model.predict_proba(frame)
    )
    monitor.flush()
    assert monitor.failures == 0
    report = (await client.get("/api/monitoring/iris")).json()
    assert report["requests"] == 1 and report["rows"] == 5
    assert report["predictions"]["count"] == 5
    assert sum(report["predictions"]["classes"].values()) == 5

    labels = iris_model.predict(frame).tolist()
    reply = await client.post(
        "/api/feedback/iris", json={"request_id": "probabilities-only", "label": labels}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted": 5, "unknown": []}
