"""A request that asks for a classifier's label alone still gives the monitor its probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tests.monitoring.conftest import Served, reference_traffic


async def test_a_request_for_the_label_alone_keeps_auc_in_the_quality_window(
    served: Served, iris_frame: pd.DataFrame, iris_model: LogisticRegression
) -> None:
    """Asking for ``predict`` alone is a Triton client's habit: its rows must keep their
    probabilities in the log, or AUC leaves the whole window (one such request is enough)."""
    client, monitor = served.client, served.monitor
    rows = reference_traffic(iris_frame, 40, seed=11)
    frame = pd.DataFrame(rows, columns=iris_frame.columns)
    truth = iris_model.predict(frame)
    truth[::4] = (truth[::4] + 1) % 3  # a quarter wrong, so that AUC is no round figure
    for i in range(0, 40, 10):
        body = {
            "id": f"label-alone-{i}",
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": "FP64",
                    "shape": [10, 4],
                    "data": rows[i : i + 10].tolist(),
                }
            ],
        }
        if i % 20 == 0:  # half the requests ask for the label alone
            body["outputs"] = [{"name": "predict"}]
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status_code == 200, response.text
        names = [o["name"] for o in response.json()["outputs"]]
        assert names == (["predict"] if i % 20 == 0 else ["predict", "predict_proba"])
    monitor.flush()
    for i in range(0, 40, 10):
        labels = truth[i : i + 10].tolist()
        reply = await client.post(
            "/api/feedback/iris", json={"request_id": f"label-alone-{i}", "label": labels}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"accepted": 10, "unknown": []}
    report = (await client.get("/api/monitoring/iris")).json()
    current = report["performance"]["current"]
    expected = roc_auc_score(truth, iris_model.predict_proba(frame), multi_class="ovr")
    assert abs(current["auc"] - expected) < 1e-9
    assert abs(current["accuracy"] - float(np.mean(truth == iris_model.predict(frame)))) < 1e-12
