"""The limits of ModelPilot's HTTP/2 front on real sockets: time for the preface, for a
request's body and for an answer to be taken, an idle timeout, a bound on what answers left
untaken may hold, and a number of connections."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import h2.events
import h2.settings
import numpy as np
import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.grpc.calls import OK_TRAILERS, RESPONSE_HEADERS, trailers_only
from modelpilot.server.grpc.errors import Status
from modelpilot.server.grpc.frames import PREFACE
from modelpilot.server.grpc.http2 import Http2Connection, Http2Limits
from modelpilot.server.grpc.http2_refusal import RefusedConnection
from modelpilot.server.grpc.stream import Stream
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings
from tests.server.conftest import LoopThread
from tests.server.grpc.conftest import GrpcServer, grpc_message, infer_request
from tests.server.grpc.test_http2_frames import H2Client, answer

CANCEL, REFUSED_STREAM = 0x8, 0x7
WINDOW = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
MAX_BODY = 4096
SLOW = Http2Limits(
    header_timeout=30, body_timeout=30, idle_timeout=30, send_timeout=30, max_connections=100
)

Serve = Callable[..., int]


async def echo(connection: Http2Connection, stream: Stream) -> None:
    """Answers with the request's body, or ``x-answer-bytes`` zeros, after ``x-sleep``
    seconds; a body refused as too much, RESOURCE_EXHAUSTED."""
    if stream.overflow is not None:
        block = trailers_only(Status("RESOURCE_EXHAUSTED", stream.overflow))
        connection.respond(stream, block, None, None)
        return
    body = stream.body
    await asyncio.sleep(float(stream.header("x-sleep") or 0))
    size = stream.header("x-answer-bytes")
    connection.respond(stream, RESPONSE_HEADERS, bytes(int(size)) if size else body, OK_TRAILERS)


@pytest.fixture
def serve(loop_thread: LoopThread) -> Iterator[Serve]:
    """Starts the HTTP/2 front with ``echo`` and the given limits fields on top of ``SLOW``,
    counting its connections as a gRPC server does; returns its port."""
    servers: list[tuple[asyncio.Server, set[Http2Connection]]] = []

    def start(**limits: Any) -> int:
        chosen = dataclasses.replace(SLOW, **limits)
        connections: set[Http2Connection] = set()

        def connection() -> Http2Connection | RefusedConnection:
            if len(connections) >= chosen.max_connections:
                reason = f"the server holds its limit of {chosen.max_connections} connections"
                refusal = Status("UNAVAILABLE", f"{reason} (MODELPILOT_MAX_CONNECTIONS)")
                return RefusedConnection(trailers_only(refusal), refusal.message, lambda c: None)
            made = Http2Connection(echo, MAX_BODY, connections.discard, limits=chosen)
            connections.add(made)
            return made

        async def listen() -> asyncio.Server:
            return await asyncio.get_running_loop().create_server(connection, "127.0.0.1", 0)

        server = loop_thread.run(listen())
        servers.append((server, connections))
        return int(server.sockets[0].getsockname()[1])

    yield start

    async def stop() -> None:
        for server, connections in servers:
            server.close()
            for connection in list(connections):
                connection.abort()
        await asyncio.sleep(0.1)  # for the transports to close

    loop_thread.run(stop())


def frames_until_closed(sock: socket.socket) -> list[tuple[int, bytes]]:
    """The (type, payload) of each frame the server sends until it closes the connection;
    fails if it keeps the connection for 10 s."""
    sock.settimeout(10)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError("the server still holds the connection after 10 s") from None
    frames = []
    while received:
        length, kind = int.from_bytes(received[:3], "big"), received[3]
        frames.append((kind, received[9 : 9 + length]))
        received = received[9 + length :]
    return frames


def goaway_of(frames: list[tuple[int, bytes]]) -> tuple[int, str]:
    """The error code and debug text of the GOAWAY that ends ``frames``."""
    kind, payload = frames[-1]
    assert kind == 7  # GOAWAY
    return int.from_bytes(payload[4:8], "big"), payload[8:].decode()


def open_call(client: H2Client, **headers: str) -> int:
    """A new stream with gRPC's request headers and ``headers`` (``x_sleep`` is x-sleep)."""
    stream = client.conn.get_next_available_stream_id()
    block = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        *((name.replace("_", "-"), value) for name, value in headers.items()),
    ]
    client.conn.send_headers(stream, block)
    return stream


def finish(client: H2Client, stream: int, body: bytes = b"x") -> None:
    client.conn.send_data(stream, body, end_stream=True)
    client.flush()


def reset_code(client: H2Client, stream: int) -> int:
    events = client.until(stream, h2.events.StreamReset)
    return next(e.error_code for e in events if isinstance(e, h2.events.StreamReset))


def test_a_connection_without_its_preface_is_closed(serve: Serve) -> None:
    port = serve(header_timeout=0.3)
    for sent in (b"", PREFACE[:10]):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(sent)
            code, text = goaway_of(frames_until_closed(sock))
        assert code == 0
        assert text == (
            "no HTTP/2 connection preface within 0.3 s (MODELPILOT_HEADER_TIMEOUT_SECONDS)"
        )


def test_a_connection_with_no_call_open_is_closed_once_idle(serve: Serve) -> None:
    """A call longer than the idle timeout is answered: only a connection without one idles."""
    client = H2Client(serve(idle_timeout=0.5))
    try:
        stream = open_call(client, x_sleep="1")
        finish(client, stream, b"slow")
        assert answer(client.until(stream, h2.events.StreamEnded))[1] == b"slow"
        events = client.until(0, h2.events.ConnectionTerminated)
        goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.error_code == 0 and goaway.last_stream_id == stream
        assert goaway.additional_data == (
            b"no call within 0.5 s (MODELPILOT_GRPC_IDLE_TIMEOUT_SECONDS)"
        )
        client.sock.settimeout(10)
        assert client.sock.recv(65536) == b""  # and closed
    finally:
        client.close()


def test_a_body_that_does_not_all_come_is_reset_and_let_go(serve: Serve) -> None:
    """Three bodies that stopped short held three quarters of what a connection may hold
    for ever, and so the fourth and fifth were refused (RESOURCE_EXHAUSTED). They are reset
    at the body timeout, and what they held goes with them."""
    client = H2Client(serve(body_timeout=0.5))
    try:
        stalled = [open_call(client) for _ in range(3)]
        for stream in stalled:
            client.conn.send_data(stream, bytes(4000))
        client.flush()
        assert [reset_code(client, stream) for stream in stalled] == [CANCEL] * 3
        streams = [open_call(client) for _ in range(4)]  # 16,000 held, under 4 x 4,096
        for stream in streams:
            client.conn.send_data(stream, bytes(4000))
        for stream in streams:
            finish(client, stream)
        for stream in streams:
            _, body, trailers = answer(client.until(stream, h2.events.StreamEnded))
            assert trailers["grpc-status"] == "0" and body == bytes(4000) + b"x"
    finally:
        client.close()


def test_answers_left_untaken_are_bounded(serve: Serve) -> None:
    """A client that opens no flow-control window had every answer kept for it. Once
    answers worth four bodies at the limit wait, new calls are refused (REFUSED_STREAM,
    which clients may retry) until it takes them."""
    client = H2Client(serve(), {WINDOW: 0})
    try:
        streams = []
        for _ in range(5):  # answered, but the body of each answer waits for the window
            streams.append(client.call(bytes(4000)))
            client.until(streams[-1], h2.events.ResponseReceived)
        # 20,000 bytes wait now, over 4 x 4,096.
        assert reset_code(client, client.call(bytes(4000))) == REFUSED_STREAM
        client.conn.update_settings({WINDOW: 1 << 20})
        client.flush()
        for stream in streams:
            _, body, trailers = answer(client.until(stream, h2.events.StreamEnded))
            assert trailers["grpc-status"] == "0" and body == bytes(4000)
        stream = client.call(b"again")
        assert answer(client.until(stream, h2.events.StreamEnded))[1] == b"again"
    finally:
        client.close()


def test_an_answer_not_taken_in_time_is_reset(serve: Serve) -> None:
    client = H2Client(serve(send_timeout=0.5), {WINDOW: 0})
    try:
        stream = client.call(b"held back")
        client.until(stream, h2.events.ResponseReceived)
        assert reset_code(client, stream) == CANCEL
        # The connection serves on, to a client that opens its window.
        client.conn.update_settings({WINDOW: 1 << 20})
        client.flush()
        stream = client.call(b"taken")
        assert answer(client.until(stream, h2.events.StreamEnded))[1] == b"taken"
    finally:
        client.close()


def test_a_client_that_reads_nothing_is_dropped(serve: Serve) -> None:
    """A client with open windows that does not read its socket left its answers in the
    server's write buffer for as long as it kept the connection."""
    client = H2Client(serve(send_timeout=0.5), {WINDOW: (1 << 31) - 1})
    try:
        client.conn.increment_flow_control_window((1 << 31) - 1 - 65_535)
        size = 32 << 20
        stream = open_call(client, x_answer_bytes=str(size))
        finish(client, stream)
        time.sleep(1.5)  # reading nothing, past the send timeout
        client.sock.settimeout(10)
        received = 0
        try:
            while chunk := client.sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"still connected, {received} bytes read") from None
        assert received < size
    finally:
        client.close()


def test_a_connection_past_the_limit_is_refused_at_once(serve: Serve) -> None:
    port = serve(max_connections=2)
    kept = [H2Client(port), H2Client(port)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            frames = frames_until_closed(sock)
        assert [kind for kind, _ in frames] == [4, 7]  # its SETTINGS, then GOAWAY
        code, text = goaway_of(frames)
        assert code == 0 and "limit of 2 connections (MODELPILOT_MAX_CONNECTIONS)" in text
        for client in kept:  # the others serve on
            stream = client.call(b"kept")
            assert answer(client.until(stream, h2.events.StreamEnded))[1] == b"kept"
    finally:
        for client in kept:
            client.close()


def test_an_answer_held_back_does_not_hold_its_request(
    served_registry: Registry, loop_thread: LoopThread
) -> None:
    """Each ModelInfer call whose answer waited for the client's window kept its request's
    body too (9 MiB of 20 MiB per call); the request is let go once decoded."""
    settings = make_settings(served_registry)
    engine = InferenceEngine(served_registry, settings)
    loop_thread.run(engine.start())

    async def serve_grpc() -> Any:
        server, port = create_grpc_server(engine, settings, host="127.0.0.1", port=0)
        await server.start()
        return server, port

    server, port = loop_thread.run(serve_grpc())
    client = H2Client(port, {WINDOW: 0})
    try:
        rows = np.tile([[5.1, 3.5, 1.4, 0.2]], (400, 1))
        stream = client.call(grpc_message(infer_request(rows)))
        client.until(stream, h2.events.ResponseReceived)
        (connection,) = server.connections
        held = connection.streams[stream]
        assert len(held.pending) > 400 * 8  # the answer waits for the window
        assert held.chunks == []
    finally:
        client.close()
        loop_thread.run(server.stop(1))
        loop_thread.run(engine.stop())


def test_the_grpc_server_takes_its_limits_from_the_settings(grpc_server: GrpcServer) -> None:
    port = grpc_server(max_connections=1)
    kept = H2Client(port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(2)  # a refusal comes at once
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert b"limit of 1 connections (MODELPILOT_MAX_CONNECTIONS)" in received
    finally:
        kept.close()
