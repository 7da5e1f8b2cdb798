"""ModelPilot's own HTTP/2 front, by clients it did not write: grpcio, and h2 frame by frame.

grpcio exercises what gRPC clients do (compression, deadlines, cancellation, changing
metadata, messages of several MB both ways); test_http2_frames sends, with h2, what grpcio
never does.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.grpc.calls import deadline
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.server.conftest import LoopThread
from tests.server.grpc.conftest import GrpcServer, grpc_message, infer_request, labels

INFER = "/inference.GRPCInferenceService/ModelInfer"

SLEEPY = '''
import time


class Model:
    """Sleeps as many seconds as the first value says, then sums each row."""

    def predict(self, x):
        time.sleep(float(x[0, 0]))
        return x.sum(axis=1)
'''


@pytest.fixture
def sleepy_registry(served_registry: Registry, tmp_path: Path) -> Registry:
    path = tmp_path / "sleepy.py"
    path.write_text(SLEEPY)
    register_model(served_registry, "sleepy", path, flavor="python")
    return served_registry


@pytest.fixture
def stub(port: int) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    limit = 32 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


# -- what grpcio does ---------------------------------------------------------------------


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_compressed_requests(
    stub: pb_grpc.GRPCInferenceServiceStub, compression: grpc.Compression
) -> None:
    rows = np.tile([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], (50, 1))
    plain = labels(stub.ModelInfer(infer_request(rows)))
    packed = labels(stub.ModelInfer(infer_request(rows), compression=compression))
    np.testing.assert_array_equal(packed, plain)
    assert set(plain) == {0, 2}


def test_messages_of_several_megabytes_both_ways(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    # 8 MB in (over the stream's 4 MB window, so the server must open it as data comes) and
    # over 6 MB out (over grpcio's window, so the server must wait for its WINDOW_UPDATEs).
    rows = np.random.default_rng(0).normal(5, 2, size=(250_000, 4))
    response = stub.ModelInfer(infer_request(rows))
    index = [o.name for o in response.outputs].index("predict_proba")
    proba = np.frombuffer(response.raw_output_contents[index], dtype="<f8").reshape(-1, 3)
    assert proba.shape == (250_000, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def raw_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes((kind, flags)) + struct.pack(">I", stream) + payload
    )


def test_the_same_header_bytes_after_the_table_changed(port: int) -> None:
    # Hand-made HPACK: one block, sent twice, refers to dynamic entry 62 both times, but a
    # block in between inserts a new entry 62. The second time it names another method.
    service = "/inference.GRPCInferenceService/"

    def insert_path(method: str) -> bytes:  # literal, indexed name :path, added to the table
        value = (service + method).encode()
        return b"\x44" + bytes((len(value),)) + value

    common = b"\x83\x86" + b"\x00\x0ccontent-type\x10application/grpc"  # POST, http
    refer = common + b"\xbe"  # :path from dynamic entry 62
    blocks = [
        common + insert_path("ServerMetadata"),
        refer,
        common + insert_path("ServerLive"),
        refer,
    ]
    message = grpc_message(pb.ServerLiveRequest())  # both requests are empty messages
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + raw_frame(4, 0, 0, b"")
    for i, block in enumerate(blocks):
        out += raw_frame(1, 4, 2 * i + 1, block) + raw_frame(0, 1, 2 * i + 1, message)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(out)
        received = b""
        bodies: dict[int, bytes] = {}
        ended: set[int] = set()
        while len(ended) < 4:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection"
            received += chunk
            while len(received) >= 9 and len(received) >= 9 + int.from_bytes(received[:3], "big"):
                length = int.from_bytes(received[:3], "big")
                kind, flags = received[3], received[4]
                stream = int.from_bytes(received[5:9], "big")
                if kind == 0:
                    bodies[stream] = bodies.get(stream, b"") + received[9 : 9 + length]
                if kind == 1 and flags & 1:
                    ended.add(stream)
                received = received[9 + length :]
    assert pb.ServerMetadataResponse.FromString(bodies[1][5:]).name == "modelpilot"
    assert pb.ServerMetadataResponse.FromString(bodies[3][5:]).name == "modelpilot"
    assert pb.ServerLiveResponse.FromString(bodies[5][5:]).live
    assert pb.ServerLiveResponse.FromString(bodies[7][5:]).live
    assert bodies[7] == bodies[5] != bodies[3]


def test_changing_metadata_on_one_connection(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    # grpcio indexes new header values in HPACK's dynamic table; the decoded headers the
    # server remembers must follow the table as it changes.
    rows = np.array([[5.1, 3.5, 1.4, 0.2]])
    for i in range(40):
        metadata = (("x-call", str(i % 7)), ("x-tag", "t" * (i % 3)))
        response = stub.ModelInfer(infer_request(rows, request_id=f"r{i}"), metadata=metadata)
        assert response.id == f"r{i}"
    assert stub.ServerLive(pb.ServerLiveRequest()).live


def test_unknown_methods(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/Nope")
        with pytest.raises(grpc.RpcError) as info:
            call(b"")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "no method /inference.GRPCInferenceService/Nope" in info.value.details()


def test_a_request_that_is_not_the_message(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(INFER)
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff")
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "not a ModelInferRequest" in info.value.details()


def test_deadlines(grpc_server: GrpcServer, sleepy_registry: Registry) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server()}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(infer_request(np.array([[1.0, 2.0]]), "sleepy"), timeout=0.2)
        # grpcio may find the deadline past before the server's answer arrives; either
        # way the call ends with DEADLINE_EXCEEDED, and the next one is served.
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        answer = stub.ModelInfer(infer_request(np.array([[0.0, 2.0]]), "sleepy"), timeout=10)
        assert np.frombuffer(answer.raw_output_contents[0], dtype="<f8").tolist() == [2.0]


def test_timeout_values() -> None:
    assert deadline("100m") == pytest.approx(0.1)
    assert deadline("5S") == 5.0
    assert deadline("2M") == 120.0
    assert deadline("1H") == 3600.0
    assert deadline("250u") == pytest.approx(250e-6)
    assert deadline("99999999n") == pytest.approx(0.099999999)
    assert deadline(None) is None
    assert deadline("123456789S") is None  # more than 8 digits
    assert deadline("5s") is None  # no such unit


def test_graceful_stop_finishes_calls_in_flight(
    sleepy_registry: Registry, loop_thread: LoopThread
) -> None:
    settings = make_settings(sleepy_registry)
    engine = InferenceEngine(sleepy_registry, settings)
    loop_thread.run(engine.start())

    async def serve() -> Any:
        return create_grpc_server(engine, settings, host="127.0.0.1", port=0)

    server, port = loop_thread.run(serve())
    loop_thread.run(server.start())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    try:
        assert stub.ServerLive(pb.ServerLiveRequest()).live
        slow = stub.ModelInfer.future(infer_request(np.array([[0.8, 1.0]]), "sleepy"))
        time.sleep(0.3)
        started = time.monotonic()
        loop_thread.run(server.stop(10))
        # The stop waited for the call, not for the whole grace period.
        assert 0.2 < time.monotonic() - started < 5
        answer = slow.result(timeout=5)
        assert np.frombuffer(answer.raw_output_contents[0], dtype="<f8").tolist() == [1.8]
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        channel.close()
        loop_thread.run(engine.stop())


def test_a_cancelled_call_leaves_the_connection_serving(
    grpc_server: GrpcServer, sleepy_registry: Registry
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server()}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        slow = stub.ModelInfer.future(infer_request(np.array([[0.5, 1.0]]), "sleepy"))
        time.sleep(0.1)
        assert slow.cancel()
        answer = stub.ModelInfer(infer_request(np.array([[0.0, 3.0]]), "sleepy"), timeout=10)
        assert np.frombuffer(answer.raw_output_contents[0], dtype="<f8").tolist() == [3.0]
