"""Loads of made-up models, raced by requests for them: the names never become labels."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from modelpilot.errors import ModelNotFound
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings

IRIS = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [1] * 4}]}


@pytest.fixture
async def watched(
    served_registry: Registry,
) -> AsyncIterator[tuple[InferenceEngine, httpx.AsyncClient]]:
    engine = InferenceEngine(served_registry, make_settings(served_registry))
    metrics = ProcessMonitoring.for_engine(engine)
    await engine.start()
    app = create_app(engine, engine.settings, metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield engine, client
    await engine.stop()
    metrics.stop()


async def test_made_up_names_loaded_and_asked_for_at_once_stay_off_the_metrics(
    watched: tuple[InferenceEngine, httpx.AsyncClient],
) -> None:
    """Each name was served while the registry was asked whether it exists: the request
    for it at that moment counted under its own name, 3,000 names took /metrics from 25 KB
    to 7.3 MB, and the series never went away."""
    engine, client = watched

    async def both(name: str) -> tuple[int, int]:
        load, infer = await asyncio.gather(
            client.post(f"/v2/repository/models/{name}/load"),
            client.post(f"/v2/models/{name}/infer", json=IRIS),
        )
        return load.status_code, infer.status_code

    answers = await asyncio.gather(*(both(f"made-up-{i}") for i in range(60)))
    assert set(answers) == {(404, 404)}
    exposed = (await client.get("/metrics")).text
    assert "made-up" not in exposed
    assert engine.served_models == ["forest", "iris"]
    assert engine.inflight == {}


async def test_a_made_up_name_is_not_served_while_the_registry_is_asked(
    watched: tuple[InferenceEngine, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While its load waited on the registry, a made-up name was served: its requests were
    labelled by it, and the server said it was not ready (the name had no version yet)."""
    engine, _ = watched
    asked, release = threading.Event(), threading.Event()
    resolve = engine.registry.resolve

    def held(ref: ModelRef) -> ModelVersion:
        if ref.name == "made-up":
            asked.set()
            release.wait(10)
        return resolve(ref)

    monkeypatch.setattr(engine.registry, "resolve", held)
    loading = asyncio.create_task(engine.load_model("made-up"))
    try:
        assert await asyncio.to_thread(asked.wait, 10)
        assert engine.ready
        assert "made-up" not in engine.served_models
        assert engine._label("made-up") == "(unknown)"
        assert not await engine.model_ready("made-up")
    finally:
        release.set()
    with pytest.raises(ModelNotFound, match="made-up"):
        await loading
    assert engine.served_models == ["forest", "iris"]


async def test_a_model_unloaded_then_loaded_again_serves(
    watched: tuple[InferenceEngine, httpx.AsyncClient],
) -> None:
    engine, client = watched
    assert (await client.post("/v2/repository/models/iris/unload")).status_code == 200
    assert (await client.post("/v2/models/iris/infer", json=IRIS)).status_code == 404
    assert (await client.post("/v2/repository/models/iris/load")).status_code == 200
    assert (await client.post("/v2/models/iris/infer", json=IRIS)).status_code == 200
    assert await engine.model_ready("iris")
    assert engine.ready
