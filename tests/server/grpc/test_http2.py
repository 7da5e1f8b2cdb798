"""ModelPilot's own HTTP/2 front, by clients it did not write: grpcio, and h2 frame by frame.

grpcio exercises what gRPC clients do (compression, deadlines, cancellation, changing
metadata, messages of several MB both ways); h2 sends what grpcio never does (tiny windows,
padding, the wrong content type, a body over the limit, a broken preface).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
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
from tests.server.grpc.conftest import GrpcServer

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
def port(grpc_server: GrpcServer) -> int:
    return grpc_server(grpc_max_message_bytes=16 * 1024 * 1024)


@pytest.fixture
def stub(port: int) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    limit = 32 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


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


# -- frame by frame, with h2 --------------------------------------------------------------


class H2Client:
    """A blocking HTTP/2 client over h2, for what gRPC clients never send."""

    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings or {})
        self.conn.initiate_connection()
        self.flush()
        self.events: list[h2.events.Event] = []
        self.closed = False

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def open(
        self,
        path: str = INFER,
        content_type: str = "application/grpc",
        method: str = "POST",
    ) -> int:
        """A new stream with its request headers sent; the body is the caller's."""
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", content_type),
            ("te", "trailers"),
        ]
        self.conn.send_headers(stream, headers, priority_weight=16)
        return stream

    def call(
        self,
        message: bytes,
        path: str = INFER,
        content_type: str = "application/grpc",
        method: str = "POST",
        pad: int | None = None,
    ) -> int:
        stream = self.open(path, content_type, method)
        self.conn.send_data(stream, message, end_stream=True, pad_length=pad)
        self.flush()
        return stream

    def until(self, stream: int, kind: type, timeout: float = 10) -> list[h2.events.Event]:
        """Read, acknowledging data as it comes, until ``kind`` arrives on ``stream``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for event in self.events:
                if isinstance(event, kind) and getattr(event, "stream_id", stream) == stream:
                    return [e for e in self.events if getattr(e, "stream_id", stream) == stream]
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                raise ConnectionError("the server closed the connection")
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.flush()
        raise TimeoutError(f"no {kind.__name__} on stream {stream}")

    def close(self) -> None:
        self.sock.close()


def grpc_message(message: Any) -> bytes:
    payload = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def answer(events: list[h2.events.Event]) -> tuple[dict[str, str], bytes, dict[str, str]]:
    """Response headers, body and trailers (empty for a trailers-only answer)."""
    headers: dict[str, str] = {}
    trailers: dict[str, str] = {}
    body = b""
    for event in events:
        if isinstance(event, h2.events.ResponseReceived):
            headers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h2.events.TrailersReceived):
            trailers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h2.events.DataReceived):
            body += event.data
    return headers, body, trailers


@pytest.fixture
def h2_client(port: int) -> Iterator[H2Client]:
    client = H2Client(port)
    yield client
    client.close()


def test_tiny_windows_padding_and_priority(port: int) -> None:
    # A 7-byte window: the server sends the answer in pieces, each after a WINDOW_UPDATE.
    client = H2Client(port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 7})
    try:
        rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
        stream = client.call(grpc_message(infer_request(rows, request_id="w")), pad=13)
        events = client.until(stream, h2.events.StreamEnded)
        headers, body, trailers = answer(events)
        chunks = [e for e in events if isinstance(e, h2.events.DataReceived)]
        assert len(chunks) > 10 and max(len(e.data) for e in chunks) <= 7
        assert headers[":status"] == "200" and trailers["grpc-status"] == "0"
        response = pb.ModelInferResponse.FromString(body[5:])
        assert response.id == "w" and labels(response).tolist() == [0, 2]
    finally:
        client.close()


def test_several_calls_at_once_on_one_connection(h2_client: H2Client) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2]])
    streams = [
        h2_client.call(grpc_message(infer_request(rows, request_id=str(i)))) for i in range(20)
    ]
    for i, stream in enumerate(streams):
        _, body, trailers = answer(h2_client.until(stream, h2.events.StreamEnded))
        assert trailers["grpc-status"] == "0"
        assert pb.ModelInferResponse.FromString(body[5:]).id == str(i)


def test_not_grpc_requests(h2_client: H2Client) -> None:
    message = grpc_message(pb.ServerLiveRequest())
    live = "/inference.GRPCInferenceService/ServerLive"
    stream = h2_client.call(message, path=live, content_type="application/json")
    headers, _, _ = answer(h2_client.until(stream, h2.events.StreamEnded))
    assert headers[":status"] == "415"
    stream = h2_client.call(message, path=live, method="PUT")
    headers, _, _ = answer(h2_client.until(stream, h2.events.StreamEnded))
    assert headers[":status"] == "405"
    stream = h2_client.call(message, path=live)
    headers, body, trailers = answer(h2_client.until(stream, h2.events.StreamEnded))
    assert trailers["grpc-status"] == "0" and pb.ServerLiveResponse.FromString(body[5:]).live


def test_framing_errors_fail_the_call_only(h2_client: H2Client) -> None:
    cases = [
        (b"", "none came"),
        (b"\x00\x00\x00\x00\x09abc", "says 9 bytes but 3 came"),
        (b"\x01\x00\x00\x00\x01a", "grpc-encoding 'identity'"),
    ]
    for message, text in cases:
        stream = h2_client.call(message)
        headers, _, _ = answer(h2_client.until(stream, h2.events.StreamEnded))
        assert headers["grpc-status"] == "13"
        assert text in headers["grpc-message"].replace("%27", "'")
    stream = h2_client.call(
        grpc_message(pb.ServerLiveRequest()), path=INFER.replace("ModelInfer", "ServerLive")
    )
    assert answer(h2_client.until(stream, h2.events.StreamEnded))[2]["grpc-status"] == "0"


def test_a_body_over_the_limit_is_answered_before_it_ends(grpc_server: GrpcServer) -> None:
    client = H2Client(grpc_server(grpc_max_message_bytes=4096))
    try:
        stream = client.open()
        client.conn.send_data(stream, b"\x00\x00\x01\x00\x00" + bytes(5000))
        client.flush()
        events = client.until(stream, h2.events.StreamReset)
        headers, _, _ = answer(events)
        assert headers["grpc-status"] == "8"
        reset = next(e for e in events if isinstance(e, h2.events.StreamReset))
        assert reset.error_code == 0  # NO_ERROR: stop sending, the answer is given
        # The connection still serves.
        rows = np.array([[5.1, 3.5, 1.4, 0.2]])
        stream = client.call(grpc_message(infer_request(rows)))
        assert answer(client.until(stream, h2.events.StreamEnded))[2]["grpc-status"] == "0"
    finally:
        client.close()


def test_a_connection_cannot_hold_more_than_four_requests_worth(grpc_server: GrpcServer) -> None:
    client = H2Client(grpc_server(grpc_max_message_bytes=4096))
    try:
        rows = np.tile([[5.1, 3.5, 1.4, 0.2]], (120, 1))
        message = grpc_message(infer_request(rows))
        assert 3800 < len(message) <= 4096
        streams = []
        for _ in range(5):  # each sends all but its last bytes, and waits
            stream = client.open()
            client.conn.send_data(stream, message[:-10])
            client.flush()
            streams.append(stream)
        # The fifth put the connection over 4 x 4,101 bytes held: it is refused at once.
        headers, _, _ = answer(client.until(streams[-1], h2.events.StreamReset))
        assert headers["grpc-status"] == "8"
        assert "still arriving on this connection" in headers["grpc-message"]
        for stream in streams[:-1]:  # the others finish, and are served
            client.conn.send_data(stream, message[-10:], end_stream=True)
            client.flush()
            _, body, trailers = answer(client.until(stream, h2.events.StreamEnded))
            assert trailers["grpc-status"] == "0"
            assert labels(pb.ModelInferResponse.FromString(body[5:])).tolist() == [0] * 120
    finally:
        client.close()


def test_ping_and_a_broken_preface(port: int, h2_client: H2Client) -> None:
    h2_client.conn.ping(b"12345678")
    h2_client.flush()
    h2_client.until(0, h2.events.PingAckReceived)
    assert any(
        isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"12345678"
        for e in h2_client.events
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    # The server's SETTINGS and WINDOW_UPDATE, then GOAWAY with PROTOCOL_ERROR, then close.
    frames = []
    while received:
        length, kind = int.from_bytes(received[:3], "big"), received[3]
        frames.append((kind, received[9 : 9 + length]))
        received = received[9 + length :]
    assert [kind for kind, _ in frames] == [4, 8, 7]
    goaway = frames[-1][1]
    assert int.from_bytes(goaway[4:8], "big") == 1  # PROTOCOL_ERROR
    assert goaway[8:] == b"not an HTTP/2 connection preface"


def test_many_connections_from_threads(port: int) -> None:
    rows = np.array([[6.7, 3.0, 5.2, 2.3]])
    failures: list[BaseException] = []

    def client() -> None:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                for _ in range(25):
                    assert labels(stub.ModelInfer(infer_request(rows))).tolist() == [2]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
