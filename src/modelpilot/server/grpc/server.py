"""Building the asyncio gRPC server: options, servicer, port."""

from __future__ import annotations

import grpc

from modelpilot.config import Settings
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from modelpilot.server.grpc.servicer import InferenceServicer
from modelpilot.serving.engine import InferenceEngine


def create_grpc_server(
    engine: InferenceEngine,
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A bound, not yet started, server; port 0 picks a free one (returned)."""
    limit = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # Worker processes bind the same port; the kernel spreads connections among them.
            ("grpc.so_reuseport", 1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(engine), server)
    address = f"{host or settings.host}:{settings.grpc_port if port is None else port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    return server, bound
