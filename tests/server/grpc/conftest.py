"""A real asyncio gRPC server on loopback, in a background loop, over the shared registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.grpc.server import GrpcServer as Server
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings
from tests.server.conftest import LoopThread

GrpcServer = Callable[..., int]


@pytest.fixture
def grpc_server(served_registry: Registry, loop_thread: LoopThread) -> Iterator[GrpcServer]:
    """Starts a server (settings overridable) and returns its port; stops them all after."""
    started: list[tuple[Server, InferenceEngine]] = []

    def start(**overrides: Any) -> int:
        settings = make_settings(served_registry, **overrides)
        engine = InferenceEngine(served_registry, settings)
        loop_thread.run(engine.start())

        async def serve() -> tuple[Server, int]:
            server, port = create_grpc_server(engine, settings, host="127.0.0.1", port=0)
            await server.start()
            return server, port

        server, port = loop_thread.run(serve())
        started.append((server, engine))
        return int(port)

    yield start
    for server, engine in started:
        loop_thread.run(server.stop(1))
        loop_thread.run(engine.stop())
