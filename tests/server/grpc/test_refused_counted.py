"""ModelInfer calls refused before their message is read (a length prefix that lies, bytes
that are no protobuf, a message over the limit, one that does not inflate) are counted in the
service metrics, as REST counts its like, with the HTTP equivalent of the status answered:
UnreadableMessage (INTERNAL, 500) or PayloadTooLarge (413), under the model ``(unknown)``, as
the model's name was in the message."""

from __future__ import annotations

import struct
from collections.abc import Callable

import grpc
import h2.events
import numpy as np
import pytest

from modelpilot.monitoring.service import ServiceMetrics
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pbg
from tests.server.grpc.conftest import GrpcServer, grpc_message, infer_request
from tests.server.grpc.test_http2_frames import H2Client, answer

LIMIT = 64 * 1024
METADATA = "/inference.GRPCInferenceService/ModelMetadata"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2]])


class Served:
    """A gRPC server of one kind, taking messages up to ``LIMIT``, with the service metrics
    watching its engine."""

    def __init__(self, port: int, metrics: ServiceMetrics) -> None:
        self.port = port
        self.metrics = metrics

    def count(self, name: str, model: str = "(unknown)", **labels: str) -> float:
        self.metrics.flush()
        version = "unknown" if model == "(unknown)" else "1"
        found = self.metrics.registry.get_sample_value(
            name, {"model": model, "version": version, **labels}
        )
        return found or 0.0

    def refused(self, status: str, kind: str) -> tuple[float, float]:
        """The calls counted with ``status``, and the errors counted of ``kind``."""
        return (
            self.count("modelpilot_requests_total", transport="grpc", status=status),
            self.count("modelpilot_errors_total", kind=kind),
        )


@pytest.fixture
def serve(grpc_server: GrpcServer) -> Callable[[str], Served]:
    """Starts a gRPC server of the kind asked for (``Served``)."""

    def start(kind: str) -> Served:
        metrics = ServiceMetrics()
        return Served(
            grpc_server(observers=[metrics], grpc_max_message_bytes=LIMIT, grpc_server=kind),
            metrics,
        )

    return start


def grpc_status(client: H2Client, stream: int) -> str:
    headers, _, trailers = answer(client.until(stream, h2.events.StreamEnded))
    return (trailers or headers)["grpc-status"]


@pytest.mark.parametrize("kind", ["native", "grpcio"])
def test_a_message_over_the_limit_is_counted_on_both_fronts(
    serve: Callable[[str], Served], kind: str
) -> None:
    """grpcio refused it before the handler ran ("Received message larger than max"), counted
    nowhere, where the native front counted it 413 PayloadTooLarge as REST does."""
    served = serve(kind)
    rows = np.zeros((LIMIT // 32 + 1, 4))  # 8 bytes a value: over LIMIT, under twice it
    with (
        grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        pbg.GRPCInferenceServiceStub(channel).ModelInfer(infer_request(rows))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"over the limit of {LIMIT} bytes" in str(info.value.details())
    assert served.refused("413", "PayloadTooLarge") == (1, 1)


@pytest.mark.parametrize("kind", ["native", "grpcio"])
def test_a_message_that_is_no_protobuf_is_counted(
    serve: Callable[[str], Served], kind: str
) -> None:
    served = serve(kind)
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda data: data,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as garbage:
            infer(b"\xff\xff\xff\xff", timeout=10)
        assert garbage.value.code() == grpc.StatusCode.INTERNAL
        pbg.GRPCInferenceServiceStub(channel).ModelInfer(infer_request(ROWS), timeout=10)
    assert served.refused("500", "UnreadableMessage") == (1, 1)
    assert served.count("modelpilot_requests_total", transport="grpc", status="ok") == 0
    ok = served.count("modelpilot_requests_total", "iris", transport="grpc", status="ok")
    assert ok == 1  # a good call stays its model's


def test_calls_refused_by_the_native_front_are_counted(serve: Callable[[str], Served]) -> None:
    served = serve("native")
    message = grpc_message(infer_request(ROWS))
    lie = message[:1] + struct.pack(">I", len(message)) + message[5:]
    not_gzip = b"\x01" + message[1:]
    client = H2Client(served.port)
    try:
        statuses = [grpc_status(client, client.call(body)) for body in (lie, b"", not_gzip)]
        with grpc.insecure_channel(
            f"127.0.0.1:{served.port}", options=[("grpc.max_send_message_length", -1)]
        ) as channel:
            big = infer_request(np.zeros((LIMIT // 32 + 10, 4)))
            with pytest.raises(grpc.RpcError) as too_big:
                pbg.GRPCInferenceServiceStub(channel).ModelInfer(big, timeout=10)
            assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Not counted: what is no gRPC call (another content-type), or another method's.
        statuses.append(grpc_status(client, client.call(message, content_type="text/plain")))
        statuses.append(grpc_status(client, client.call(b"\x00\x00\x00\x00\x01\xff", METADATA)))
    finally:
        client.sock.close()
    assert statuses == ["13", "13", "13", "2", "13"]
    assert served.refused("500", "UnreadableMessage") == (3, 3)
    assert served.refused("413", "PayloadTooLarge") == (1, 1)
