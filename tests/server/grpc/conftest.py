"""A real asyncio gRPC server on loopback, in a background loop, over the shared registry."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.server import GrpcServer as Server
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings
from tests.server.conftest import LoopThread

GrpcServer = Callable[..., int]


@pytest.fixture
def grpc_server(served_registry: Registry, loop_thread: LoopThread) -> Iterator[GrpcServer]:
    """Starts a server (settings overridable; ``observers`` watch its engine) and returns its
    port; stops them all after."""
    started: list[tuple[Server, InferenceEngine]] = []

    def start(*, observers: Sequence[object] = (), **overrides: Any) -> int:
        settings = make_settings(served_registry, **overrides)
        engine = InferenceEngine(served_registry, settings)
        for observer in observers:
            engine.add_observer(observer)
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


@pytest.fixture
def port(grpc_server: GrpcServer) -> int:
    """A server taking messages of up to 16 MB (test modules may choose their own)."""
    return grpc_server(grpc_max_message_bytes=16 * 1024 * 1024)


def infer_request(
    rows: np.ndarray, model: str = "iris", request_id: str = ""
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(np.ascontiguousarray(rows, dtype="<f8").tobytes())
    return request


def labels(response: pb.ModelInferResponse) -> np.ndarray:
    index = [o.name for o in response.outputs].index("predict")
    return np.frombuffer(response.raw_output_contents[index], dtype="<i8")


def grpc_message(message: Any) -> bytes:
    """A gRPC message as it goes in a DATA frame: uncompressed, length-prefixed."""
    payload = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload
