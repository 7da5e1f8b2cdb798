"""A server whose PostgreSQL registry goes silent (not refusing): what needs the registry
answers 503 with Retry-After within seconds, not never; what is loaded serves on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.database_proxy import DatabaseProxy

ROW = [5.9, 3.0, 5.1, 1.8]
BODY = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [ROW]}]}


@pytest.fixture
async def engine(
    proxy: DatabaseProxy, tmp_path: Path, iris_model_path: Path
) -> AsyncIterator[InferenceEngine]:
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path, aliases=["production"])
    register_model(registry, "iris", iris_model_path)  # version 2: not loaded
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    yield engine
    proxy.resume()  # else stopping waits for what still hangs
    await engine.stop()
    registry.close()


async def test_what_needs_a_silent_registry_answers_503_in_seconds(
    engine: InferenceEngine, proxy: DatabaseProxy
) -> None:
    """The tester's server (its database's host frozen, a proxy stopped in between) answered
    the repository index and a version not loaded with nothing in 45 s, and logged nothing."""
    app = create_app(engine, engine.settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/v2/repository/index", json={})).status_code == 200
        proxy.pause()
        for ask in (
            lambda: client.post("/v2/repository/index", json={}),
            lambda: client.get("/v2/models/iris/versions/2/ready"),
            lambda: client.post("/v2/models/iris/versions/2/infer", json=BODY),
        ):
            started = time.monotonic()
            answer = await asyncio.wait_for(ask(), timeout=20)  # never: 45 s and more
            assert answer.status_code == 503, answer.text
            assert time.monotonic() - started < 15
            assert int(answer.headers["retry-after"]) >= 1
            assert "registry" in answer.json()["error"]
        served = await client.post("/v2/models/iris/infer", json=BODY)
        assert served.status_code == 200, served.text  # the loaded version serves on
        proxy.resume()
        deadline = time.monotonic() + 30
        while (await client.post("/v2/repository/index", json={})).status_code != 200:
            assert time.monotonic() < deadline, "the registry never answered again"
            await asyncio.sleep(0.2)
