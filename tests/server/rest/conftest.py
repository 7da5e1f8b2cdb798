"""An in-process client for the REST app over the shared engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from modelpilot.server.rest import create_app
from modelpilot.server.rest.app import create_api
from modelpilot.serving.engine import InferenceEngine


@pytest.fixture(params=["fast path", "fastapi"])
async def client(
    engine: InferenceEngine, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the full app, and of the FastAPI routes alone: both must behave the same."""
    if request.param == "fast path":
        app = create_app(engine, engine.settings)
    else:
        app = create_api(engine, engine.settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
