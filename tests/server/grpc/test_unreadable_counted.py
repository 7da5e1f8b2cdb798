"""A ModelInfer call whose message cannot be read is counted with the HTTP equivalent of the
status its client was answered: INTERNAL (what gRPC answers a message that does not parse
with) is 500, UNIMPLEMENTED (an encoding the server does not read) 501; not a 400, which
made this server's metrics count a client error where the client's counted a server one."""

from __future__ import annotations

import struct
from collections.abc import Callable

import grpc
import h2.events
import pytest

from modelpilot.monitoring.service import ServiceMetrics
from modelpilot.server.grpc.servicer import INFER
from tests.server.grpc.conftest import GrpcServer, grpc_message, infer_request
from tests.server.grpc.test_http2_frames import H2Client, answer
from tests.server.grpc.test_refused_counted import ROWS, Served


@pytest.fixture
def serve(grpc_server: GrpcServer) -> Callable[[str], Served]:
    """Starts a gRPC server of the kind asked for, the service metrics watching its engine."""

    def start(kind: str) -> Served:
        metrics = ServiceMetrics()
        return Served(grpc_server(observers=[metrics], grpc_server=kind), metrics)

    return start


@pytest.mark.parametrize("kind", ["native", "grpcio"])
def test_a_message_that_is_no_protobuf_is_counted_as_the_internal_error_answered(
    serve: Callable[[str], Served], kind: str
) -> None:
    served = serve(kind)
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        infer = channel.unary_unary(
            INFER,
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.RpcError) as garbage:
            infer(b"\xff\xff\xff\xff garbage", timeout=10)
    assert garbage.value.code() == grpc.StatusCode.INTERNAL
    assert served.refused("500", "UnreadableMessage") == (1, 1)
    assert served.refused("400", "BadRequest") == (0, 0)


def test_framing_the_native_front_cannot_read_is_counted_as_answered(
    serve: Callable[[str], Served],
) -> None:
    served = serve("native")
    message = grpc_message(infer_request(ROWS))
    lie = message[:1] + struct.pack(">I", len(message)) + message[5:]
    not_gzip = b"\x01" + message[1:]
    client = H2Client(served.port)
    try:
        statuses = [status(client, client.call(body)) for body in (lie, b"", not_gzip)]
        stream = client.conn.get_next_available_stream_id()  # an encoding it does not read
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", INFER),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-encoding", "br"),
        ]
        client.conn.send_headers(stream, headers)
        client.conn.send_data(stream, not_gzip, end_stream=True)
        client.flush()
        statuses.append(status(client, stream))
    finally:
        client.sock.close()
    assert statuses == ["13", "13", "13", "12"]
    assert served.refused("500", "UnreadableMessage") == (3, 3)
    assert served.refused("501", "UnknownEncoding") == (1, 1)
    assert served.refused("400", "BadRequest") == (0, 0)


def status(client: H2Client, stream: int) -> str:
    headers, _, trailers = answer(client.until(stream, h2.events.StreamEnded))
    return (trailers or headers)["grpc-status"]
