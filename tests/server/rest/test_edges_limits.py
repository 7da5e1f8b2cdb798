"""Bodies over the size limit are counted in ``modelpilot_requests_total`` as 413, as every
other refused prediction is counted (they went uncounted), on the fast path and off it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.server.rest.app import create_api
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings

BIG = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a" * 4096]}]}
)


@pytest.fixture(params=["fast path", "fastapi"])
async def limited(
    served_registry: Registry, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, ProcessMonitoring]]:
    settings = make_settings(served_registry, max_request_bytes=2048)
    engine = InferenceEngine(served_registry, settings)
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    await engine.start()
    build = create_app if request.param == "fast path" else create_api
    transport = httpx.ASGITransport(app=build(engine, settings, monitoring))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, monitoring
    await engine.stop()
    monitoring.stop()


async def _streamed() -> AsyncIterator[bytes]:  # no Content-Length: limited while read
    yield BIG


def _count(monitoring: ProcessMonitoring, model: str, status: str) -> float:
    labels = {"model": model, "version": "unknown", "transport": "rest", "status": status}
    return monitoring.registry.get_sample_value("modelpilot_requests_total", labels) or 0


async def test_bodies_over_the_limit_are_counted_as_413(
    limited: tuple[httpx.AsyncClient, ProcessMonitoring],
) -> None:
    client, monitoring = limited
    paths = [
        "/v2/models/iris/infer",
        "/v2/models/iris/versions/1/infer",
        "/predict/iris",
        "/v2/models/%69ris/infer",  # percent-encoded: FastAPI's, past the fast path
    ]
    for path in paths:
        for content in (BIG, _streamed()):
            response = await client.post(path, content=content, headers={"x-request-id": "r"})
            assert response.status_code == 413, (path, response.text)
            assert response.headers["x-request-id"] == "r"
    assert _count(monitoring, "iris", "413") == 2 * len(paths)
    errors = {"model": "iris", "version": "unknown", "kind": "PayloadTooLarge"}
    assert monitoring.registry.get_sample_value("modelpilot_errors_total", errors) == 2 * len(paths)


async def test_a_made_up_model_is_what_the_client_hears_of_first(
    limited: tuple[httpx.AsyncClient, ProcessMonitoring],
) -> None:
    """As with any body it could not read: under the one label of models not served here."""
    client, monitoring = limited
    for content in (BIG, _streamed()):
        response = await client.post("/v2/models/made-up/infer", content=content)
        assert response.status_code == 404, response.text
    assert _count(monitoring, "(unknown)", "404") == 2
    assert "made-up" not in (await client.get("/metrics")).text


async def test_bodies_over_the_limit_of_other_endpoints_are_no_models(
    limited: tuple[httpx.AsyncClient, ProcessMonitoring],
) -> None:
    client, monitoring = limited
    for path in ("/v2/repository/index", "/api/feedback/iris"):
        assert (await client.post(path, content=BIG)).status_code == 413
    counted = [
        sample
        for family in monitoring.registry.collect()
        for sample in family.samples
        # Served versions' series stand at 0 from their load on; none may have risen.
        if sample.name == "modelpilot_requests_total" and sample.value
    ]
    assert counted == []
