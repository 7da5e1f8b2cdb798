"""What an error advises a REST client to do names the REST request to make (the core's
message names no transport's path; REST's error mapping adds its own)."""

from __future__ import annotations

import httpx

ROW = {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}


async def test_an_unloaded_model_names_the_load_path(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v2/repository/models/iris/unload")).status_code == 200
    answer = await client.post("/v2/models/iris/infer", json={"inputs": [ROW]})
    assert answer.status_code == 404
    assert answer.json()["error"] == (
        "model 'iris' was unloaded; load it through the repository API "
        "(POST /v2/repository/models/iris/load)"
    )


async def test_the_classification_refusal_names_get_v2(client: httpx.AsyncClient) -> None:
    body = {
        "inputs": [ROW],
        "outputs": [{"name": "predict_proba", "parameters": {"classification": 2}}],
    }
    answer = await client.post("/v2/models/iris/infer", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"].endswith("lists the extensions it offers (GET /v2)")
