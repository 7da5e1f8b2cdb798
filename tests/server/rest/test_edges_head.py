"""HEAD is answered as GET is, without the body: load balancers and monitors probe with it
(every GET route answered it 405)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine

GETS = [
    "/v2/health/live",
    "/v2/health/ready",
    "/v2",
    "/v2/models/iris",
    "/v2/models/iris/ready",
    "/v2/models/iris/versions/1",
    "/v2/models/iris/versions/1/ready",
    "/v2/models/iris/config",
    "/v2/repository/index",
    "/openapi.json",
]


@pytest.mark.parametrize("path", GETS)
async def test_head_gets_what_get_gets_but_the_body(client: httpx.AsyncClient, path: str) -> None:
    got = await client.get(path)
    head = await client.head(path)
    assert (head.status_code, got.status_code) == (200, 200), head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_gets_the_errors_get_gets_without_their_body(client: httpx.AsyncClient) -> None:
    missing = await client.head("/v2/models/nope", headers={"x-request-id": "probe"})
    assert (missing.status_code, missing.content) == (404, b"")
    assert missing.headers["x-request-id"] == "probe"
    not_ready = await client.head("/v2/models/nope/ready")
    assert (not_ready.status_code, not_ready.content) == (404, b"")
    # A POST-only endpoint answers HEAD as it answers GET: 405, saying what it allows.
    infer = await client.head("/v2/models/iris/infer")
    assert (infer.status_code, infer.content) == (405, b"")
    assert infer.headers["allow"] == "POST"


@pytest.fixture
async def monitored_client(engine: InferenceEngine) -> AsyncIterator[httpx.AsyncClient]:
    monitoring = ProcessMonitoring.for_engine(engine)
    transport = httpx.ASGITransport(app=create_app(engine, engine.settings, monitoring))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    monitoring.stop()


async def test_head_of_metrics(monitored_client: httpx.AsyncClient) -> None:
    head = await monitored_client.head("/metrics")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"].startswith("text/plain")
    assert int(head.headers["content-length"]) > 0
