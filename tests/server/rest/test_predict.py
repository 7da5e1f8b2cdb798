"""``POST /predict/{name}``: rows, records, and what comes back."""

from __future__ import annotations

import httpx
import pandas as pd
from sklearn.linear_model import LogisticRegression


async def test_one_row(
    client: httpx.AsyncClient, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    response = await client.post("/predict/iris", json={"data": iris_frame.iloc[0].tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "iris" and body["version"] == "1"
    assert body["predictions"] == iris_model.predict(iris_frame.iloc[[0]]).tolist()
    assert len(body["outputs"]["predict_proba"][0]) == 3
    assert response.headers["x-request-id"] == body["id"]


async def test_many_rows_and_a_version(
    client: httpx.AsyncClient, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.iloc[[0, 75, 149]]
    response = await client.post("/predict/iris/versions/1", json={"data": rows.values.tolist()})
    assert response.json()["predictions"] == iris_model.predict(rows).tolist()


async def test_records_by_feature_name_in_any_order(
    client: httpx.AsyncClient, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.iloc[[10, 140]]
    records = [dict(reversed(list(r.items()))) for r in rows.to_dict("records")]
    response = await client.post("/predict/iris", json={"instances": records, "id": "r-1"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == iris_model.predict(rows).tolist()
    assert response.json()["id"] == "r-1"


async def test_a_regressor_without_feature_names(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict/forest", json={"data": [[0.01] * 10, [0.05] * 10]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and all(isinstance(p, float) for p in predictions)
