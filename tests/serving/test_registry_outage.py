"""A server whose PostgreSQL registry stops answering for a while: what needs the registry is
unavailable (503 with Retry-After, gRPC UNAVAILABLE) and names no database; what is loaded
serves on; the log says it once a minute, not at every alias refresh, and says when it is back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from modelpilot.errors import RegistryUnavailable
from modelpilot.registry.store import Registry
from modelpilot.server.grpc.errors import status_of
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
    engine = InferenceEngine(registry, make_settings(registry, alias_refresh_seconds=0.1))
    await engine.start()
    yield engine
    await engine.stop()
    registry.close()


async def _until(condition: Callable[[], bool], what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {seconds:g} s"
        await asyncio.sleep(0.05)


def _said(caplog: pytest.LogCaptureFixture, name: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno >= level]


async def test_what_needs_the_registry_is_unavailable_and_said_once_until_it_is_back(
    engine: InferenceEngine, proxy: DatabaseProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelpilot")
    app = create_app(engine, engine.settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    registry = engine.registry
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        proxy.down()
        for answer in (
            await client.post("/v2/repository/index", json={}),
            await client.post("/v2/models/iris/versions/2/infer", json=BODY),
        ):
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["retry-after"]) >= 1
            error = answer.json()["error"]
            assert "registry" in error and "retry" in error
            for secret in ("127.0.0.1", str(proxy.port), "sqlalche.me", "psycopg"):
                assert secret not in error
        served = await client.post("/v2/models/iris/infer", json=BODY)
        assert served.status_code == 200, served.text  # the loaded version serves on

        # The alias refresh (every 0.1 s here, 2 s by default) keeps failing: said once.
        await _until(lambda: registry._outage.failures >= 20, "failed 20 times")
        assert _said(caplog, "modelpilot.serving.served", logging.WARNING) == []
        [down] = _said(caplog, "modelpilot.registry.store", logging.ERROR)
        assert f":{proxy.port}/" in down and "Connection refused" in down

        proxy.up()
        await _until(
            lambda: any(
                "answers again" in m for m in _said(caplog, "modelpilot.registry.store", 0)
            ),
            "said to answer again",
        )
        assert (await client.post("/v2/models/iris/versions/2/infer", json=BODY)).status_code == 200
    back = [m for m in _said(caplog, "modelpilot.registry.store", 0) if "answers again" in m]
    assert len(back) == 1


def test_grpc_answers_an_unreachable_registry_unavailable_with_retry_after() -> None:
    status = status_of(RegistryUnavailable("the model registry does not answer for now"), "x")
    assert status.name == "UNAVAILABLE" and ("retry-after", "1") in status.metadata
