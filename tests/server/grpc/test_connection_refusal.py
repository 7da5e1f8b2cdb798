"""A gRPC connection past the server's limit: its call fails at once with UNAVAILABLE and a
reason, as REST answers 503 at once. GOAWAY alone (as the server did) told grpcio to connect
again and again, until the call's deadline."""

from __future__ import annotations

import socket
import time

import grpc
import h2.events
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from modelpilot.server.grpc.generated import inference_pb2_grpc as pbg
from tests.server.grpc.conftest import GrpcServer, infer_request, labels
from tests.server.grpc.test_http2_frames import H2Client, answer

REASON = "limit of 1 connections (MODELPILOT_MAX_CONNECTIONS)"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2]])


@pytest.fixture
def full(grpc_server: GrpcServer) -> tuple[int, H2Client]:
    """A server allowed one connection, and the client that holds it."""
    port = grpc_server(max_connections=1)
    kept = H2Client(port)
    kept.until(0, h2.events.RemoteSettingsChanged)  # (the connection is the server's now)
    return port, kept


def test_a_grpcio_call_fails_at_once_with_unavailable(full: tuple[int, H2Client]) -> None:
    port, kept = full
    try:
        # (GOAWAY alone was a race: grpcio reported the stream removed when its call went out
        # before the GOAWAY came, and connected again until the deadline when after.)
        for _ in range(5):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as refused:
                    stub = pbg.GRPCInferenceServiceStub(channel)
                    stub.ModelInfer(infer_request(ROWS), timeout=10)
                took = time.monotonic() - started
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert refused.value.details().startswith("the server holds its " + REASON)
            assert ("retry-after", "1") in refused.value.trailing_metadata()
            assert took < 5  # not the deadline of 10 s
        kept.sock.close()  # room again: the next connection is served
        time.sleep(0.2)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pbg.GRPCInferenceServiceStub(channel)
            assert labels(stub.ModelInfer(infer_request(ROWS), timeout=10)).tolist() == [0]
    finally:
        kept.sock.close()


def test_a_tritonclient_call_fails_at_once(full: tuple[int, H2Client]) -> None:
    port, kept = full
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
        tensor.set_data_from_numpy(ROWS)
        started = time.monotonic()
        with pytest.raises(InferenceServerException) as refused:
            client.infer("iris", [tensor], client_timeout=10)
        assert time.monotonic() - started < 5
        assert refused.value.status() == "StatusCode.UNAVAILABLE"
        assert REASON in refused.value.message()
    finally:
        client.close()
        kept.sock.close()


def test_the_refusal_answers_each_call_then_says_goodbye(full: tuple[int, H2Client]) -> None:
    port, kept = full
    client = H2Client(port)
    try:
        first = client.open()  # a call whose body has not come yet
        second = client.call(b"\x00\x00\x00\x00\x00")
        client.flush()
        events = client.until(first, h2.events.StreamEnded)
        headers, body, _ = answer(events)
        assert headers["grpc-status"] == "14" and REASON in headers["grpc-message"]
        assert body == b""
        headers = answer(client.until(second, h2.events.StreamEnded))[0]
        assert headers["grpc-status"] == "14"
        goaway = client.until(0, h2.events.ConnectionTerminated)[-1]
        assert isinstance(goaway, h2.events.ConnectionTerminated)
        assert goaway.error_code == 0 and goaway.last_stream_id == second
        client.sock.settimeout(5)
        assert client.sock.recv(1) == b""  # then closed
    finally:
        client.sock.close()
        kept.sock.close()


def test_a_refused_connection_keeps_no_body(full: tuple[int, H2Client]) -> None:
    """What the client sends is skipped, not kept: a connection that sends a huge frame
    and never opens a call is told the refusal within the wait, and closed."""
    port, kept = full
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
            )
            sock.sendall((2**24 - 1).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01")
            sock.sendall(bytes(1 << 20))
            sock.settimeout(5)
            received = b""
            started = time.monotonic()
            while chunk := sock.recv(65536):
                received += chunk
            assert time.monotonic() - started < 4
        assert REASON.encode() in received
    finally:
        kept.sock.close()
