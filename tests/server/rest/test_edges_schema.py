"""The OpenAPI document's input tensor takes what the decoder takes, and refuses what it
refuses: shape [] (a scalar, one value) is the protocol's, as Triton has it (its ``reshape``
to ``[]``); ``data`` is a list, flat or nested, even of a scalar's one value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from modelpilot.errors import BadRequest
from modelpilot.protocol.json_codec import decode_request
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model

VECTOR_MODEL = '''
class Model:
    """Doubles one value per row."""

    signature = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, x):
        return x * 2
'''


def _tensor(**given: Any) -> dict[str, Any]:
    return {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.5], **given}


TENSORS = [
    # (tensor, whether the protocol takes it)
    (_tensor(), True),
    (_tensor(shape=[], data=[1.5]), True),
    (_tensor(shape=[], data=[[1.5]]), True),
    (_tensor(shape=[1] * 32), True),
    (_tensor(shape=[0], data=[]), True),
    (_tensor(shape=[1] * 33), False),
    (_tensor(shape=[], data=1.5), False),
    (_tensor(data=1.5), False),
    (_tensor(datatype="BYTES", data="a"), False),
    (_tensor(data={"a": 1}), False),
    (_tensor(datatype="FP128"), False),
    (_tensor(shape=[-1]), False),
    (_tensor(name=""), False),
]


async def _tensor_schema(client: httpx.AsyncClient) -> dict[str, Any]:
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


@pytest.mark.parametrize(("tensor", "taken"), TENSORS)
async def test_the_schema_and_the_decoder_agree(
    client: httpx.AsyncClient, tensor: dict[str, Any], taken: bool
) -> None:
    schema = await _tensor_schema(client)
    body = {"inputs": [tensor]}
    valid = jsonschema.Draft202012Validator(schema).is_valid(body)
    try:
        decode_request(orjson.dumps(body))
        decoded = True
    except BadRequest:
        decoded = False
    assert (valid, decoded) == (taken, taken)


async def test_a_scalar_reaches_a_model_that_takes_one_value_a_row(
    client: httpx.AsyncClient, served_registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "double.py"
    path.write_text(VECTOR_MODEL)
    register_model(served_registry, "double", path, flavor="python")
    body = {"inputs": [_tensor(shape=[], data=[1.5])]}
    response = await client.post("/v2/models/double/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [3.0]
    # A model of rows of features says what it takes instead: 422, documented.
    refused = await client.post("/v2/models/iris/infer", json=body)
    assert refused.status_code == 422
    assert "has shape []; the model takes a 2-D tensor" in refused.json()["error"]
    scalar = await client.post("/v2/models/double/infer", json={"inputs": [_tensor(data=1.5)]})
    assert scalar.status_code == 422
    assert '"data" must be a list' in scalar.json()["error"]
