"""The OpenAPI document says what the endpoints answer: every status and body, errors too."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest

ROW = [5.1, 3.5, 1.4, 0.2]
TENSOR = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}

CALLS: list[tuple[str, str, Any, int]] = [
    # (method, path, JSON body or raw bytes, the status it gets)
    ("GET", "/v2/health/live", None, 200),
    ("GET", "/v2/health/ready", None, 200),
    ("GET", "/v2", None, 200),
    ("GET", "/v2/models/iris", None, 200),
    ("GET", "/v2/models/nope", None, 404),
    ("GET", "/v2/models/iris/versions/1", None, 200),
    ("GET", "/v2/models/iris/versions/7", None, 404),
    ("GET", f"/v2/models/iris/versions/{10**30}/ready", None, 404),  # past any integer column
    ("GET", "/v2/models/iris/versions/a,b", None, 400),
    ("GET", "/v2/models/iris/versions/a,b/ready", None, 400),
    ("GET", "/v2/models/iris/versions/\u00b9/ready", None, 400),  # a digit int() refuses
    ("POST", "/v2/models/iris/versions/\u00b2/infer", {"inputs": [TENSOR]}, 400),
    ("GET", "/v2/models/iris/ready", None, 200),
    ("GET", "/v2/models/nope/ready", None, 404),
    ("GET", "/v2/models/iris/versions/1/ready", None, 200),
    ("GET", "/v2/models/iris/config", None, 200),
    ("GET", "/v2/models/nope/config", None, 404),
    ("GET", "/v2/models/iris/versions/1/config", None, 200),
    ("GET", "/v2/models/iris/versions/a,b/config", None, 400),
    ("GET", "/v2/models/stats", None, 404),  # this app keeps no metrics
    ("GET", "/v2/models/iris/stats", None, 404),
    ("GET", "/v2/models/iris/versions/1/stats", None, 404),
    ("POST", "/v2/models/iris/infer", {"id": "a", "inputs": [TENSOR]}, 200),
    ("POST", "/v2/models/iris/versions/1/infer", {"inputs": [TENSOR]}, 200),
    ("POST", "/v2/models/iris/infer", b"{not json", 400),
    ("POST", "/v2/models/iris/infer", {"inputs": [TENSOR], "id": "x" * 200}, 400),
    ("POST", "/v2/models/iris/infer", {"inputs": [{**TENSOR, "shape": [1, 3]}]}, 422),
    ("POST", "/v2/models/nope/infer", {"inputs": [TENSOR]}, 404),
    ("POST", "/predict/iris", {"data": [ROW, ROW]}, 200),
    ("POST", "/predict/iris/versions/1", {"data": ROW}, 200),
    ("POST", "/predict/iris", {"data": [[1.0, 2.0]]}, 422),
    ("POST", "/predict/iris", b"[1, 2]", 400),
    ("GET", "/v2/repository/index", None, 200),
    ("POST", "/v2/repository/index", {"ready": True}, 200),
    ("POST", "/v2/repository/models/nope/unload", None, 404),
    # this app has no monitoring: those routes say so
    ("GET", "/metrics", None, 404),
    ("POST", "/api/feedback/iris", {"request_id": "a", "label": 1}, 404),
    ("GET", "/api/alerts", None, 404),
    ("GET", "/api/monitoring/iris?version=first", None, 422),
]


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    path = path.split("?")[0]
    for template, operations in spec["paths"].items():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path) and method.lower() in operations:
            operation: dict[str, Any] = operations[method.lower()]
            return operation
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


@pytest.mark.parametrize(("method", "path", "body", "status"), CALLS)
async def test_every_answer_is_documented_with_its_body(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    spec = (await client.get("/openapi.json")).json()
    content = body if isinstance(body, bytes) else None
    response = await client.request(
        method, path, json=None if content is not None else body, content=content
    )
    assert response.status_code == status, response.text
    documented = _operation(spec, method, path)["responses"]
    assert str(status) in documented, f"{method} {path}: {status} is not documented"
    assert "HTTPValidationError" not in str(documented)
    media = documented[str(status)].get("content", {})
    if "application/json" in media:
        schema = {**media["application/json"]["schema"], "components": spec["components"]}
        jsonschema.validate(response.json(), schema)
    if status >= 400:
        assert set(response.json()) == {"error"}


async def test_only_our_own_error_body_is_documented(client: httpx.AsyncClient) -> None:
    """(Not FastAPI's validation error. Health and readiness answer 503 with their usual
    body, saying they are not ready.)"""
    spec = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in str(spec)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                probe = "/health/" in path or path.endswith("/ready")
                if int(status) >= 400 and not (status == "503" and probe):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["required"] == ["error"], (method, path, status)


async def test_the_feedback_body_is_documented_as_the_route_takes_it(
    client: httpx.AsyncClient,
) -> None:
    """A label is a string, number or boolean, or a list of them: a null one was documented
    as fine and refused (schemathesis found it)."""
    spec = (await client.get("/openapi.json")).json()
    body = _operation(spec, "POST", "/api/feedback/iris")["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    for good in (
        {"request_id": "a", "label": 2},
        {"labels": [{"request_id": "a", "label": [0, "x"]}]},
    ):
        jsonschema.validate(good, schema)
    for bad in ({"request_id": "a", "label": None}, {"labels": [{"request_id": "a", "label": {}}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


async def test_a_version_parameter_is_documented_as_the_server_reads_it(
    client: httpx.AsyncClient,
) -> None:
    """A path's version was any string, a query's any integer: schemathesis' schema-valid
    "é" and -1 were answered 400 and 422."""
    spec = (await client.get("/openapi.json")).json()
    in_paths = [
        parameter["schema"]
        for path, operations in spec["paths"].items()
        if "{version}" in path
        for operation in operations.values()
        for parameter in operation["parameters"]
        if parameter["name"] == "version"
    ]
    assert len(in_paths) >= 6
    for schema in in_paths:
        assert schema["maxLength"] == 128
        pattern = re.compile(schema["pattern"])
        for version in ("1", "production", "v2.1-rc_3", "a" * 128):
            assert pattern.search(version), version
        for version in ("\u00e9", "-1", "", "a,b", "a" * 129):
            assert not pattern.search(version), version
            if not version or len(version) > 128:
                continue
            answer = await client.get(f"/v2/models/iris/versions/{version}")
            assert answer.status_code == 400, (version, answer.text)
    query = _operation(spec, "GET", "/api/monitoring/{model}")["parameters"]
    version = next(p for p in query if p["name"] == "version")
    assert {"type": "integer", "minimum": 1} in version["schema"]["anyOf"]
    assert (await client.get("/api/monitoring/iris?version=-1")).status_code == 422


async def test_a_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    """GET and POST of /v2/repository/index are two routes: the 405 said "allow: GET"."""
    for method in ("OPTIONS", "DELETE", "PUT"):
        answer = await client.request(method, "/v2/repository/index")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, HEAD, POST"
        assert "error" in answer.json()
    answer = await client.delete("/v2/health/live")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
