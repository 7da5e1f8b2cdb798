"""ModelPilot's own HTTP/2 front frame by frame, with h2: what grpcio never sends (tiny
windows, padding, priority, the wrong content type, a body over the limit, a broken preface,
many calls on one connection)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import numpy as np
import pytest

from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from tests.server.grpc.conftest import GrpcServer, grpc_message, infer_request, labels

INFER = "/inference.GRPCInferenceService/ModelInfer"


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
