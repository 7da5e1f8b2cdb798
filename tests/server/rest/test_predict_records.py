"""``POST /predict``'s body: records whose fields the model does not know, and a body that
says both ``data`` and ``instances``."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import IRIS_FEATURES

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.mark.parametrize("records", [1, 4])
async def test_a_field_the_model_does_not_know_is_an_unknown_feature(
    client: httpx.AsyncClient, records: int
) -> None:
    """One field by an unknown name was taken as the model's whole input: for one record
    the client heard of a 2-D tensor it never sent, and four were taken as one row of four
    features, and answered 200."""
    instances = [{"foo": float(i)} for i in range(records)]
    response = await client.post("/predict/iris", json={"instances": instances})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "unknown features ['foo']" in error
    assert f"the model takes {IRIS_FEATURES}" in error


async def test_fields_of_a_feature_and_an_unknown_name(client: httpx.AsyncClient) -> None:
    instances = [{"sepal_length": 5.1, "colour": "red"}]
    response = await client.post("/predict/iris", json={"instances": instances})
    assert response.status_code == 422
    error = response.json()["error"]
    assert "unknown features ['colour']" in error and "missing features" in error


async def test_a_single_feature_by_its_name_is_still_a_feature(
    client: httpx.AsyncClient,
) -> None:
    records = [dict(zip(IRIS_FEATURES, ROW, strict=True))] * 4
    response = await client.post("/predict/iris", json={"instances": records})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 4


async def test_both_data_and_instances_are_refused(client: httpx.AsyncClient) -> None:
    """``instances`` won, and ``data`` was dropped without a word."""
    record = dict(zip(IRIS_FEATURES, ROW, strict=True))
    body = {"data": [ROW, ROW], "instances": [record]}
    response = await client.post("/predict/iris", json=body, headers={"x-request-id": "both-1"})
    assert response.status_code == 400, response.text
    assert "send one of data or instances" in response.json()["error"]
    assert response.headers["x-request-id"] == "both-1"
