"""JSON's true and false in ``/predict``, by the rule v2 follows: a feature sent as true and
false alone is read as 1 and 0 (as a BOOL tensor is), and true or false beside numbers in
one feature is refused (as v2 refuses them in FP64 data). NumPy made them 1.0 and 0.0 beside
numbers without a word, where v2 refused the same values."""

from __future__ import annotations

import gzip

import httpx
import orjson

from tests.conftest import IRIS_FEATURES

ROW = [5.1, 3.5, 1.4, 0.2]


async def test_true_or_false_beside_numbers_in_a_row_column_is_refused(
    client: httpx.AsyncClient,
) -> None:
    for body in ({"data": [ROW, [True, 1, 1, 1]]}, {"data": [ROW, [5.0, 3.0, False, 0.5]]}):
        response = await client.post("/predict/iris", json=body)
        assert response.status_code == 422, response.text
        column = 0 if body["data"][1][0] is True else 2
        assert response.json()["error"].startswith(
            f'column {column} of "data" holds true or false (row 1) beside numbers: send a '
            "feature of numbers as numbers"
        )
    # Compressed, the same: the look for true and false is at the body's text.
    body = gzip.compress(orjson.dumps({"data": [ROW, [True, 1, 1, 1]]}))
    response = await client.post(
        "/predict/iris", content=body, headers={"content-encoding": "gzip"}
    )
    assert response.status_code == 422, response.text


async def test_true_or_false_beside_numbers_in_a_records_feature_is_refused(
    client: httpx.AsyncClient,
) -> None:
    first = dict(zip(IRIS_FEATURES, ROW, strict=True))
    instances = [first, {**first, "petal_width": True}]
    response = await client.post("/predict/iris", json={"instances": instances})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(
        "feature 'petal_width' holds true or false (instance 1) beside numbers"
    )


async def test_v2_refuses_them_in_fp64_data_as_predict_does(client: httpx.AsyncClient) -> None:
    tensor = {
        "name": "input-0",
        "datatype": "FP64",
        "shape": [2, 4],
        "data": [ROW, [True, 1, 1, 1]],
    }
    response = await client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert response.status_code == 422, response.text
    assert "FP64 data must be numbers, not true or false" in response.json()["error"]


async def test_a_feature_of_true_and_false_alone_is_read_as_one_and_zero_both_ways(
    client: httpx.AsyncClient,
) -> None:
    flags = [[True, False, True, False], [False, True, None, True]]
    rows = await client.post("/predict/iris", json={"data": flags[0]})
    assert rows.status_code == 200, rows.text
    tensor = {"name": "input-0", "datatype": "BOOL", "shape": [1, 4], "data": flags[0]}
    v2 = await client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert v2.status_code == 200, v2.text
    numbers = await client.post("/predict/iris", json={"data": [1.0, 0.0, 1.0, 0.0]})
    assert rows.json()["predictions"] == numbers.json()["predictions"]
    assert v2.json()["outputs"][0]["data"] == numbers.json()["predictions"]
    # A column of true, false and null (missing) is no mix of numbers: it is not refused as
    # one (iris takes no missing values, which is what it is told).
    mixed = await client.post(
        "/predict/iris", json={"data": [[5.1, True, 1.4, False], [5.0, None, 1.3, True]]}
    )
    assert "holds true or false" not in mixed.text


async def test_a_true_deep_in_a_large_body_is_found(client: httpx.AsyncClient) -> None:
    """Past 4 KB the body is looked through by a letter of each word (``mentions_truths``),
    its hits in names and text checked, and past a few dozen the word looked for whole."""
    rows = [ROW] * 500 + [[True, 1, 1, 1]]
    for extra in ({}, {"id": "u" * 40 + "l" * 40}):
        body = {"data": rows, **extra}
        response = await client.post("/predict/iris", json=body)
        assert response.status_code == 422, response.text
        assert 'column 0 of "data" holds true or false (row 500)' in response.json()["error"]
        tensor = {"name": "input-0", "datatype": "FP64", "shape": [501, 4], "data": rows}
        response = await client.post("/v2/models/iris/infer", json={"inputs": [tensor], **extra})
        assert response.status_code == 422, response.text
        assert "FP64 data must be numbers, not true or false" in response.json()["error"]
    assert (await client.post("/predict/iris", json={"data": [ROW] * 501})).status_code == 200
