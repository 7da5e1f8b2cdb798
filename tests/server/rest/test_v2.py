"""The v2 REST endpoints in process: health, metadata, JSON and binary inference, repository."""

from __future__ import annotations

import struct

import httpx
import numpy as np
import orjson
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelpilot.registry.store import Registry


def v2_body(rows: list[list[float]], **extra: object) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP64",
                "data": rows,
            }
        ],
        **extra,
    }


async def test_health_and_server_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    meta = (await client.get("/v2")).json()
    assert meta["name"] == "modelpilot"
    assert "binary_tensor_data" in meta["extensions"]


async def test_model_metadata(client: httpx.AsyncClient) -> None:
    meta = (await client.get("/v2/models/iris")).json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"] and meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["parameters"]["feature_names"][0] == "sepal_length"
    assert (await client.get("/v2/models/iris/versions/1")).status_code == 200
    assert (await client.get("/v2/models/iris/ready")).json()["ready"] is True
    assert (await client.get("/v2/models/iris/versions/1/ready")).status_code == 200
    unknown = await client.get("/v2/models/nope/ready")
    assert unknown.status_code == 404 and "no model named 'nope'" in unknown.json()["error"]
    unknown = await client.get("/v2/models/iris/versions/7/ready")
    assert unknown.status_code == 404 and "has no version 7" in unknown.json()["error"]


async def test_json_inference_matches_the_model(
    client: httpx.AsyncClient, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.iloc[[0, 60, 120]].to_numpy().tolist()
    response = await client.post("/v2/models/iris/infer", json=v2_body(rows, id="abc"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "abc" and response.headers["x-request-id"] == "abc"
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    outputs = {o["name"]: o for o in body["outputs"]}
    expected = iris_model.predict(iris_frame.iloc[[0, 60, 120]])
    assert outputs["predict"]["data"] == expected.tolist()
    assert outputs["predict"]["datatype"] == "INT64"
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    np.testing.assert_allclose(proba, iris_model.predict_proba(iris_frame.iloc[[0, 60, 120]]))


async def test_requested_outputs_and_versions(client: httpx.AsyncClient) -> None:
    body = v2_body([[5.1, 3.5, 1.4, 0.2]], outputs=[{"name": "predict_proba"}])
    response = await client.post("/v2/models/iris/versions/1/infer", json=body)
    assert [o["name"] for o in response.json()["outputs"]] == ["predict_proba"]
    response = await client.post("/v2/models/iris/versions/production/infer", json=body)
    assert response.status_code == 200


async def test_a_request_id_header_is_used_when_the_body_has_none(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v2/models/iris/infer",
        json=v2_body([[5.1, 3.5, 1.4, 0.2]]),
        headers={"x-request-id": "from-header"},
    )
    assert response.json()["id"] == "from-header"


async def test_an_overlong_request_id_is_refused_from_body_or_header(
    client: httpx.AsyncClient,
) -> None:
    row = [[5.1, 3.5, 1.4, 0.2]]
    long = "x" * 200
    response = await client.post("/v2/models/iris/infer", json=v2_body(row, id=long))
    assert response.status_code == 400 and "200 characters" in response.json()["error"]
    headers = {"x-request-id": long}
    response = await client.post("/v2/models/iris/infer", json=v2_body(row), headers=headers)
    assert response.status_code == 400 and "200 characters" in response.json()["error"]
    response = await client.post("/predict/iris", json={"data": row}, headers=headers)
    assert response.status_code == 400 and "200 characters" in response.json()["error"]
    response = await client.post("/predict/iris", json={"data": row, "id": ["a"]})
    assert response.status_code == 400 and "not list" in response.json()["error"]
    response = await client.post("/predict/iris", json={"data": row, "id": 7})
    assert response.status_code == 200 and response.json()["id"] == "7"


async def test_a_request_id_beyond_ascii_is_answered_in_the_body(
    client: httpx.AsyncClient,
) -> None:
    """HTTP headers carry bytes, not text: such an id is echoed in the body alone (it used to
    fail the answer with a 500 once the model had answered)."""
    row = [[5.1, 3.5, 1.4, 0.2]]
    for request_id in ("日本", "café", "a\u2028b"):
        for path, body in (
            ("/v2/models/iris/infer", v2_body(row, id=request_id)),
            ("/predict/iris", {"data": row, "id": request_id}),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["id"] == request_id
            assert "x-request-id" not in response.headers


async def test_an_error_answer_carries_the_request_id(client: httpx.AsyncClient) -> None:
    wrong = {"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [[1, 2, 3]]}
    response = await client.post("/v2/models/iris/infer", json={"id": "e-1", "inputs": [wrong]})
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "e-1"
    response = await client.post("/predict/iris", json={"data": [[1, 2, 3]], "id": "e-2"})
    assert response.status_code == 422 and response.headers["x-request-id"] == "e-2"
    headers = {"x-request-id": "e-3"}
    response = await client.post("/predict/nope", json={"data": [[1.0]]}, headers=headers)
    assert response.status_code == 404 and response.headers["x-request-id"] == "e-3"


async def test_predict_takes_the_ids_v2_takes(client: httpx.AsyncClient) -> None:
    row = [[5.1, 3.5, 1.4, 0.2]]
    response = await client.post("/predict/iris", json={"data": row, "id": 0})
    assert response.status_code == 200 and response.json()["id"] == "0"
    response = await client.post("/predict/iris", json={"data": row, "id": False})
    assert response.status_code == 400 and "not bool" in response.json()["error"]


async def test_binary_inputs_and_outputs(
    client: httpx.AsyncClient, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.iloc[:2].to_numpy()
    raw = rows.astype("<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    response = await client.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    meta = orjson.loads(response.content[:length])
    tail = response.content[length:]
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    labels = np.frombuffer(tail[: sizes[0]], dtype="<i8")
    proba = np.frombuffer(tail[sizes[0] :], dtype="<f8").reshape(2, 3)
    np.testing.assert_array_equal(labels, iris_model.predict(iris_frame.iloc[:2]))
    np.testing.assert_allclose(proba, iris_model.predict_proba(iris_frame.iloc[:2]))


async def test_gzip_request_bodies_are_accepted(client: httpx.AsyncClient) -> None:
    import gzip

    body = gzip.compress(orjson.dumps(v2_body([[5.1, 3.5, 1.4, 0.2]])))
    response = await client.post(
        "/v2/models/iris/infer", content=body, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text


async def test_bytes_outputs_are_strings_in_json(
    client: httpx.AsyncClient, served_registry: Registry, tmp_path
) -> None:
    import joblib

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], ["no", "no", "yes", "yes"])
    joblib.dump(model, tmp_path / "words.joblib")
    from modelpilot.serving.registration import register_model

    register_model(served_registry, "words", tmp_path / "words.joblib")
    response = await client.post("/v2/models/words/infer", json=v2_body([[0.0], [3.0]]))
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict"] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["no", "yes"],
    }
    binary = await client.post(
        "/v2/models/words/infer",
        json=v2_body([[3.0]], outputs=[{"name": "predict", "parameters": {"binary_data": True}}]),
    )
    length = int(binary.headers["inference-header-content-length"])
    assert binary.content[length:] == struct.pack("<I", 3) + b"yes"


async def test_repository_index_unload_and_load(client: httpx.AsyncClient) -> None:
    index = (await client.get("/v2/repository/index")).json()
    assert {(e["name"], e["state"]) for e in index} == {("iris", "READY"), ("forest", "READY")}
    assert (await client.post("/v2/repository/models/forest/unload")).status_code == 200
    not_ready = await client.get("/v2/models/forest/ready")  # as inference would: 404
    assert not_ready.status_code == 404 and "was unloaded" in not_ready.json()["error"]
    ready = (await client.post("/v2/repository/index", json={"ready": True})).json()
    assert [e["name"] for e in ready] == ["iris"]
    # The text "false" read as true, and left the unloaded model out.
    text = await client.post("/v2/repository/index", json={"ready": "false"})
    assert text.status_code == 400 and '"ready" must be true or false' in text.json()["error"]
    gone = await client.post("/v2/models/forest/infer", json=v2_body([[0.0] * 10]))
    assert gone.status_code == 404 and "was unloaded" in gone.json()["error"]
    assert (await client.post("/v2/repository/models/forest/load")).status_code == 200
    again = await client.post("/v2/models/forest/infer", json=v2_body([[0.0] * 10]))
    assert again.status_code == 200


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/v2/models/{name}/infer" in spec["paths"]
    assert "/predict/{name}" in spec["paths"]
    # Bodies the endpoints read themselves are documented all the same, with examples.
    for path in ("/v2/models/{name}/infer", "/predict/{name}", "/api/feedback/{model}"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["type"] == "object" and body["examples"], path
