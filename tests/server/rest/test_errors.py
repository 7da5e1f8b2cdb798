"""Every bad request gets a clear 4xx over REST, and never disturbs the next good one."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from modelpilot.errors import internal_message
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.server.rest.app import create_api
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

GOOD = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def tensor(shape: list[int], data: object, datatype: str = "FP64") -> dict[str, object]:
    return {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]}


CASES = [
    # (path, body, status, fragment of the message)
    (
        "/v2/models/iris/infer",
        tensor([1, 3], [1, 2, 3]),
        422,
        "has 3 features per row; the model takes 4 (sepal_length",
    ),
    ("/v2/models/iris/infer", tensor([1, 2, 2], [1, 2, 3, 4]), 422, "takes a 2-D tensor"),
    (
        "/v2/models/iris/infer",
        tensor([2, 4], [1, 2, 3, 4]),
        422,
        "has 4 values but shape [2, 4] needs 8",
    ),
    (
        "/v2/models/iris/infer",
        tensor([1, 4], ["a", "b", "c", "d"], "BYTES"),
        422,
        "holds strings but the model takes FP64",
    ),
    (
        "/v2/models/iris/infer",
        tensor([1, 4], ["a", "b", "c", "d"]),
        422,
        "FP64 data must be numbers, not strings",
    ),
    ("/v2/models/iris/infer", tensor([1, 4], [1, 2, 3, 4], "FP128"), 422, "unknown datatype"),
    ("/v2/models/iris/infer", tensor([0, 4], []), 422, "no rows"),
    ("/v2/models/iris/infer", {"inputs": []}, 422, '"inputs" must be a non-empty list'),
    ("/v2/models/iris/infer", tensor([1, 4], [1, None, 3, 4]), 422, "1 NaN or infinite value(s)"),
    ("/v2/models/iris/infer", {**GOOD, "outputs": [{"name": "nope"}]}, 422, "unknown output"),
    ("/v2/models/nope/infer", GOOD, 404, "no model named 'nope'"),
    ("/v2/models/iris/versions/9/infer", GOOD, 404, "has no version 9; it has version 1"),
    ("/v2/models/iris/versions/staging/infer", GOOD, 404, "has no alias 'staging'"),
    ("/predict/iris", {"data": [1, 2]}, 422, "has 2 features per row"),
    ("/predict/iris", {"data": []}, 422, "non-empty list"),
    ("/predict/iris", {"rows": [1]}, 422, 'send {"data": [...]}'),
    (
        "/predict/iris",
        {"instances": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3}]},
        422,
        "missing features ['petal_width']",
    ),
    (
        "/predict/iris",
        {
            "instances": [
                {
                    "sepal_length": 1,
                    "sepal_width": 2,
                    "petal_length": 3,
                    "petal_width": 4,
                    "colour": 5,
                }
            ]
        },
        422,
        "unknown features ['colour']",
    ),
    (
        "/predict/iris",
        {"data": [[5.1, None, 1.4, 0.2]]},
        422,
        "NaN or infinite value(s) (first at row 0, feature 'sepal_width')",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), CASES)
async def test_bad_requests(
    client: httpx.AsyncClient, path: str, body: object, status: int, message: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    # The server is unharmed: the next good request works.
    assert (await client.post("/v2/models/iris/infer", json=GOOD)).status_code == 200


@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (b'{"inputs": [', {}, "not valid JSON"),
        (b"[1, 2]", {}, "must be a JSON object"),
        (
            b'{"inputs": []}',
            {"Inference-Header-Content-Length": "500"},
            "Inference-Header-Content-Length is 500 but the body has only 14 bytes",
        ),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "abc"}, "must be a number"),
        (b"\x00\x01", {"Content-Encoding": "gzip"}, "not valid gzip data"),
        (b"{}", {"Content-Encoding": "br"}, "unsupported Content-Encoding"),
    ],
)
async def test_malformed_bodies_get_400(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], message: str
) -> None:
    response = await client.post("/v2/models/iris/infer", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("declared", "actual", "message"),
    [
        (24, 16, "binary_data_size 24 runs past the end"),
        (16, 32, "the binary section has 32 bytes but the inputs' binary_data_size add up to 16"),
        (32, 32, "32 bytes of raw data, but shape [1, 2] of FP64 needs 16"),
    ],
)
async def test_malformed_binary_tensors_get_400(
    client: httpx.AsyncClient, declared: int, actual: int, message: str
) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    )
    response = await client.post(
        "/v2/models/iris/infer",
        content=header + b"\x00" * actual,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


async def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v3/nothing")
    assert missing.status_code == 404 and "no such endpoint" in missing.json()["error"]
    wrong = await client.get("/v2/models/iris/infer")
    assert wrong.status_code == 405 and "error" in wrong.json()


async def test_a_made_up_model_is_not_found_whatever_its_version_and_body(
    client: httpx.AsyncClient,
) -> None:
    """An alias no model can have ("¢", percent-encoded) was answered 400, and with a bad
    body, that body's 422: the README promises 404 for an unknown model, whatever the body."""
    for content in (orjson.dumps(GOOD), b"{}"):
        response = await client.post("/v2/models/unreg9/versions/%C2%A2/infer", content=content)
        assert response.status_code == 404, response.text
        assert response.json()["error"].startswith("no model named 'unreg9' in the registry")
    # A model that exists with an alias no model can have is the client's mistake, 400.
    response = await client.post("/v2/models/iris/versions/%C2%A2/infer", json=GOOD)
    assert response.status_code == 400 and "invalid alias" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "shown"),
    [
        ("POST", "/v2/models/" + "m" * 60_000 + "/infer", {}, 404, "'mmmm"),
        ("POST", "/predict/" + "m" * 60_000, {}, 404, "'mmmm"),
        (
            "POST",
            "/v2/models/iris/infer",
            {"Inference-Header-Content-Length": "9" * 5000},
            400,
            "'9999",
        ),
        (
            "POST",
            "/v2/models/iris/infer",
            {"Inference-Header-Content-Length": "9" * 4000},  # a number, but not of this body
            400,
            "9999",
        ),
        ("GET", "/v3/" + "p" * 60_000, {}, 404, "pppp"),
    ],
    ids=["v2 model", "predict model", "header no number", "header past the body", "route"],
)
async def test_what_the_client_sent_is_quoted_short(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    shown: str,
) -> None:
    """A 60,000-character model name came back as a 60 KB answer; a 5,000-digit header, too."""
    response = await client.request(method, path, content=orjson.dumps(GOOD), headers=headers)
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert len(response.content) < 1000 and shown in error and " characters)" in error, error


@pytest.fixture(params=["fast path", "fastapi"])
async def small_client(
    served_registry: Registry, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(served_registry, max_request_bytes=2048)
    engine = InferenceEngine(served_registry, settings)
    await engine.start()
    build = create_app if request.param == "fast path" else create_api
    transport = httpx.ASGITransport(app=build(engine, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await engine.stop()


async def test_bodies_over_the_limit_get_413(small_client: httpx.AsyncClient) -> None:
    big = tensor([300, 4], [[5.1, 3.5, 1.4, 0.2]] * 300)
    response = await small_client.post("/v2/models/iris/infer", json=big)
    assert response.status_code == 413
    assert "over the limit of 2048 bytes" in response.json()["error"]

    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b" " * 1024

    streamed = await small_client.post("/v2/models/iris/infer", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["error"].startswith("the request body is over the limit of 2048 bytes")
    assert (await small_client.post("/v2/models/iris/infer", json=GOOD)).status_code == 200


RR = {"x-request-id": "rr"}

UNDECODED = [
    # (path, body that gives no request id, status)
    ("/v2/models/iris/infer", b"garbage{", 400),
    ("/v2/models/iris/infer", b"[]", 400),
    ("/v2/models/iris/infer", b"{}", 422),
    ("/v2/models/iris/infer", b'{"inputs": []}', 422),
    ("/v2/models/iris/infer", orjson.dumps(tensor([2, 4], [1, 2, 3, 4])), 422),
    ("/v2/models/iris/infer", orjson.dumps({**GOOD, "outputs": "all"}), 400),
    ("/v2/models/nope/infer", b"garbage{", 404),
    ("/v2/models/iris/versions/9/infer", b"[]", 404),
    ("/predict/iris", b"garbage{", 400),
    ("/predict/iris", b"[]", 400),
    ("/predict/iris", b'{"rows": [1]}', 422),
    ("/predict/nope", b"garbage{", 404),
]


@pytest.mark.parametrize(("path", "content", "status"), UNDECODED)
async def test_an_error_echoes_the_request_id_header_when_the_body_gave_none(
    client: httpx.AsyncClient, path: str, content: bytes, status: int
) -> None:
    response = await client.post(path, content=content, headers=RR)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert response.headers["x-request-id"] == "rr"


async def test_an_error_echoes_the_id_of_a_body_that_failed_to_decode(
    client: httpx.AsyncClient,
) -> None:
    """As on success, the body's id comes before the header's."""
    bodies = [
        ("/v2/models/iris/infer", {"id": "b-1", **tensor([2, 4], [1, 2, 3, 4])}, 422),
        ("/v2/models/iris/infer", {"id": "b-2", "inputs": []}, 422),
        ("/v2/models/nope/infer", {"id": "b-3", "inputs": []}, 404),
        ("/predict/iris", {"id": "b-4", "data": []}, 422),
        ("/predict/nope", {"id": "b-5", "rows": [1]}, 404),
    ]
    for path, body, status in bodies:
        response = await client.post(path, json=body, headers=RR)
        assert response.status_code == status, response.text
        assert response.headers["x-request-id"] == body["id"], path
    header = orjson.dumps(
        {
            "id": "b-6",
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ],
        }
    )
    response = await client.post(
        "/v2/models/iris/infer",
        content=header + b"\x00" * 8,
        headers={**RR, "Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400, response.text
    assert response.headers["x-request-id"] == "b-6"


async def test_an_error_echoes_the_header_when_the_bodys_id_is_invalid(
    client: httpx.AsyncClient,
) -> None:
    row = [[5.1, 3.5, 1.4, 0.2]]
    for path, body in (
        ("/v2/models/iris/infer", {**GOOD, "id": "x" * 200}),
        ("/v2/models/iris/infer", {"id": "x" * 200, "inputs": []}),
        ("/predict/iris", {"data": row, "id": "x" * 200}),
        ("/predict/iris", {"data": row, "id": ["a"]}),
    ):
        response = await client.post(path, json=body, headers=RR)
        assert response.status_code in (400, 422), response.text
        assert response.headers["x-request-id"] == "rr", (path, body)


@pytest.mark.parametrize("sent", ["x" * 129, "a\tb", "café".encode("latin-1")])
async def test_an_invalid_request_id_header_is_not_echoed(
    client: httpx.AsyncClient, sent: str | bytes
) -> None:
    """Over 128 characters or holding a control character, it is no id (so the error may be
    about it); beyond ASCII, it is not echoed in a header on success either."""
    for path in ("/v2/models/iris/infer", "/predict/iris"):
        response = await client.post(path, content=b"garbage{", headers={"x-request-id": sent})
        assert response.status_code == 400, response.text
        assert "x-request-id" not in response.headers


async def test_errors_off_the_inference_routes_echo_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    """Framework errors (no route, wrong method, a query that does not validate) too."""
    for method, path, status in [
        ("GET", "/v3/nothing", 404),
        ("GET", "/v2/models/iris/infer", 405),
        ("GET", "/api/monitoring/iris?version=first", 422),
        ("GET", "/api/monitoring/iris?version=1_0", 422),  # not version 10
        ("GET", "/v2/models/nope", 404),
        ("POST", "/v2/repository/index", 400),
    ]:
        response = await client.request(method, path, content=b"garbage{", headers=RR)
        assert response.status_code == status, (path, response.text)
        assert response.headers["x-request-id"] == "rr", path
    wrong = await client.get("/v2/models/iris/infer", headers=RR)
    assert "allow" in wrong.headers  # the framework's own headers are kept


async def test_bodies_over_the_limit_echo_the_request_id(small_client: httpx.AsyncClient) -> None:
    big = orjson.dumps(tensor([300, 4], [[5.1, 3.5, 1.4, 0.2]] * 300))
    zipped = gzip.compress(big)
    assert len(zipped) < 2048 < len(big)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: limited while read
        yield big

    for path in ("/v2/models/iris/infer", "/predict/iris"):
        for content, headers in [
            (big, RR),
            (chunks(), RR),
            (zipped, {**RR, "content-encoding": "gzip"}),
        ]:
            response = await small_client.post(path, content=content, headers=headers)
            assert response.status_code == 413, response.text
            assert response.headers["x-request-id"] == "rr", path


async def test_nan_is_fine_for_a_model_that_allows_it(
    client: httpx.AsyncClient, served_registry: Registry, nan_model: Path
) -> None:
    register_model(served_registry, "echo", nan_model, flavor="python")
    response = await client.post("/predict/echo", json={"data": [[None, 1.0]]})
    assert response.status_code == 200, response.text


async def test_a_failing_model_gets_500_and_the_server_lives_on(
    client: httpx.AsyncClient, served_registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "broken.py"
    path.write_text("class Model:\n    def predict(self, x):\n        raise RuntimeError('boom')\n")
    register_model(served_registry, "broken", path, flavor="python")
    response = await client.post("/predict/broken", json={"data": [[1.0, 2.0]]})
    assert response.status_code == 500
    assert "boom" in response.json()["error"]
    assert (await client.post("/v2/models/iris/infer", json=GOOD)).status_code == 200


def test_an_unexpected_error_tells_the_client_its_first_line_only() -> None:
    statement = "(psycopg.DataError) text cannot contain NUL\n[SQL: SELECT secret FROM t]"
    message = internal_message(ValueError(statement))
    assert message.startswith("internal error: ValueError: (psycopg.DataError) text cannot")
    assert "SELECT" not in message and message.endswith("the server logs have details")
    assert len(internal_message(RuntimeError("x" * 10_000))) < 300
    assert internal_message(KeyError()) == "internal error: KeyError; the server logs have details"
