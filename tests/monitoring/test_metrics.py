"""Service, engine and system metrics, read back from the registry and from /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.monitoring.service import ServiceMetrics
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings


@pytest.fixture
async def watched(
    served_registry: Registry,
) -> AsyncIterator[tuple[InferenceEngine, ProcessMonitoring]]:
    engine = InferenceEngine(served_registry, make_settings(served_registry, result_cache="memory"))
    metrics = ProcessMonitoring.for_engine(engine)
    await engine.start()
    yield engine, metrics
    await engine.stop()


async def test_requests_errors_batches_and_state_are_counted(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    engine, metrics = watched
    value = metrics.registry.get_sample_value
    for _ in range(3):
        await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]), transport="rest")
    with pytest.raises(InvalidInput):
        await engine.infer("iris", request_from_rows([1.0, 2.0]), transport="grpc")
    ok = {"model": "iris", "version": "1", "transport": "rest", "status": "ok"}
    assert value("modelpilot_requests_total", ok) == 3
    bad = {"model": "iris", "version": "unknown", "transport": "grpc", "status": "422"}
    assert value("modelpilot_requests_total", bad) == 1
    assert value("modelpilot_errors_total", {"model": "iris", "kind": "InvalidInput"}) == 1
    assert (
        value("modelpilot_request_duration_seconds_count", {"model": "iris", "transport": "rest"})
        == 3
    )
    assert value("modelpilot_inflight_requests", {"model": "iris"}) == 0
    # The first request ran the model; the other two came from the result cache.
    assert value("modelpilot_batch_size_rows_count", {"model": "iris"}) == 1
    assert value("modelpilot_queue_duration_seconds_count", {"model": "iris"}) == 1
    assert value("modelpilot_result_cache_hits_total") == 2
    assert value("modelpilot_model_loaded", {"model": "iris", "version": "1"}) == 1
    assert value("modelpilot_model_loaded", {"model": "forest", "version": "1"}) == 1
    assert value("modelpilot_uptime_seconds") >= 0
    assert value("modelpilot_process_resident_memory_bytes") > 10_000_000
    assert value("modelpilot_system_cpu_count") >= 1


async def test_metrics_endpoint_serves_the_text_format(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    engine, metrics = watched
    app = create_app(engine, engine.settings, metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.post("/predict/iris", json={"data": [5.1, 3.5, 1.4, 0.2]})
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'modelpilot_requests_total{model="iris",status="ok",transport="rest",version="1"} 1.0'
        in text
    )
    assert "# TYPE modelpilot_request_duration_seconds histogram" in text
    assert 'le="0.0001"' in text


async def test_metrics_are_not_global() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.request_finished("m", "1", "rest", "ok", 0.01, None)
    assert (
        first.registry.get_sample_value(
            "modelpilot_requests_total",
            {"model": "m", "version": "1", "transport": "rest", "status": "ok"},
        )
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "modelpilot_requests_total",
            {"model": "m", "version": "1", "transport": "rest", "status": "ok"},
        )
        is None
    )


async def test_a_failing_observer_does_not_fail_requests(
    served_registry: Registry,
) -> None:
    class Broken:
        def request_finished(self, *args: object) -> None:
            raise RuntimeError("observer bug")

        def batch_finished(self, *args: object) -> None:
            raise RuntimeError("observer bug")

        def predicted(self, *args: object) -> None:
            raise RuntimeError("observer bug")

    engine = InferenceEngine(served_registry, make_settings(served_registry), observers=[Broken()])
    await engine.start()
    try:
        response = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        assert response.outputs[0].data.tolist() == [0]
    finally:
        await engine.stop()
