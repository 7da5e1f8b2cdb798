"""The REST port's limits (``rest.connection_limits.GuardedHttpProtocol``) through uvicorn on
real sockets: time for a request's headers and for its body, and a number of connections; and,
with a real ``modelpilot serve``, the limit that the open-file limit sets."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from modelpilot.server.rest import create_app
from modelpilot.server.rest.connection_limits import GuardedHttpProtocol, HttpLimits
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import free_port, make_settings
from tests.processes import Server, serve_command, stop
from tests.server.conftest import LoopThread, serve_http

INFER = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n"


def infer_body(rows: int) -> bytes:
    """A v2 inference request of ``rows`` rows for iris, as JSON."""
    data = [5.1, 3.5, 1.4, 0.2] * rows
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [rows, 4], "data": data}
    return orjson.dumps({"inputs": [tensor]})


BODY = infer_body(1)

SLOW = HttpLimits(max_connections=100, header_timeout=30, body_timeout=30, send_timeout=30)

Serve = Callable[..., int]


@pytest.fixture
def serve(served_registry: Registry, loop_thread: LoopThread) -> Iterator[Serve]:
    """Starts the REST app over the shared registry with the given fields of its limits on
    top of ``SLOW``; returns its port."""
    settings = make_settings(served_registry)
    engine = InferenceEngine(served_registry, settings)
    loop_thread.run(engine.start())
    stops = []

    def start(**limits: Any) -> int:
        port = free_port()
        protocol = GuardedHttpProtocol.with_limits(dataclasses.replace(SLOW, **limits))
        stops.append(serve_http(loop_thread, create_app(engine, settings), port, http=protocol))
        return port

    yield start
    for stop_one in stops:
        stop_one()
    loop_thread.run(engine.stop())


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def until_closed(sock: socket.socket, drip: bytes = b"") -> bytes:
    """What the server sends until it closes the connection; meanwhile one byte of ``drip``
    goes out every 0.1 s. Fails if the server keeps the connection for 10 s."""
    received = b""
    sock.settimeout(0.1)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if drip and not received:
            with contextlib.suppress(OSError):  # closed by now: what it sent is still to read
                sock.sendall(drip[:1])
            drip = drip[1:]
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server still holds the connection after 10 s ({received!r})")


def waiting(sock: socket.socket) -> bytes:
    """What the server has sent on ``sock`` so far (without waiting for more)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""
    finally:
        sock.settimeout(10)


def error_answer(received: bytes) -> tuple[int, dict[str, str], str]:
    """The status, headers and error message of an answer in ``received``."""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert int(headers["content-length"]) == len(body)
    return int(lines[0].split()[1]), headers, orjson.loads(body)["error"]


def test_a_connection_that_sends_nothing_is_closed(serve: Serve) -> None:
    port = serve(header_timeout=0.3)
    with connect(port) as sock:
        assert until_closed(sock) == b""  # nothing to answer


def test_headers_that_do_not_all_come_in_time_get_408(serve: Serve) -> None:
    port = serve(header_timeout=0.5)
    with connect(port) as line, connect(port) as dripped:
        line.sendall(b"POST /v2/models/iris/inf")
        dripped.sendall(INFER)
        for sock, drip in ((line, b""), (dripped, b"X-Slow: " + b"a" * 1000)):
            status, headers, error = error_answer(until_closed(sock, drip))
            assert status == 408 and headers["connection"] == "close"
            assert "headers did not all come within 0.5 s" in error
            assert "MODELPILOT_HEADER_TIMEOUT_SECONDS" in error


def test_a_body_that_stalls_gets_408_and_the_connection_closed(serve: Serve) -> None:
    """A body 10 bytes short was held, and the connection with it, for as long as the client
    kept quiet; so was one that came a byte at a time."""
    port = serve(body_timeout=0.5)
    head = INFER + b"Content-Length: %d\r\n\r\n" % len(BODY)
    with connect(port) as stalled, connect(port) as dripped:
        stalled.sendall(head + BODY[:-10])
        dripped.sendall(head)
        for sock, drip in ((stalled, b""), (dripped, BODY)):
            status, _, error = error_answer(until_closed(sock, drip))
            assert status == 408
            assert "body did not all come within 0.5 s of its headers" in error
            assert "MODELPILOT_BODY_TIMEOUT_SECONDS" in error
    # The server serves on.
    assert httpx.post(f"http://127.0.0.1:{port}/v2/models/iris/infer", content=BODY).is_success


def test_a_body_that_stalls_off_the_fast_path_is_the_clients_hang_up(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A FastAPI route reading the body hears that the client is gone (starlette's
    ClientDisconnect): that was logged as an unexpected error with a traceback, by the app
    and again by uvicorn, as if the server had failed."""
    caplog.set_level(logging.DEBUG, logger="modelpilot.server.rest.errors")
    port = serve(body_timeout=0.5)
    body = b'{"ready": true}'
    head = b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(caplog.handler)  # it does not propagate to the root logger
    try:
        with connect(port) as sock:
            sock.sendall(head % len(body) + body[:-3])
            status, _, error = error_answer(until_closed(sock))
        assert status == 408 and "MODELPILOT_BODY_TIMEOUT_SECONDS" in error
        end = time.monotonic() + 5
        while time.monotonic() < end and not any(
            "went away" in record.getMessage() for record in caplog.records
        ):
            time.sleep(0.02)
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    gone = [r for r in caplog.records if r.name == "modelpilot.server.rest.errors"]
    assert [r.levelno for r in gone] == [logging.DEBUG], caplog.text
    assert "POST /v2/repository/index" in gone[0].getMessage()
    assert not any(r.levelno >= logging.WARNING or r.exc_info for r in caplog.records)


def test_requests_in_time_are_served_however_long_the_connection_lives(serve: Serve) -> None:
    """Each request has its own time: the header timeout counts from a connection's start
    for its first request only, and a body that comes in parts in time is read."""
    port = serve(header_timeout=1, body_timeout=1)
    head = INFER + b"Content-Length: %d\r\n\r\n" % len(BODY)
    with connect(port) as sock:
        for _ in range(3):  # 1.2 s in all, past the header timeout of the connection
            time.sleep(0.4)
            sock.sendall(head + BODY[:20])
            time.sleep(0.4)
            sock.sendall(BODY[20:])
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer


def test_a_client_that_reads_nothing_is_dropped(serve: Serve) -> None:
    """A client that did not read its answer had it kept, in full, for as long as it kept
    the connection (uvicorn's keep-alive timeout closes once all is written)."""
    port = serve(send_timeout=0.5)
    body = infer_body(200_000)
    whole = len(httpx.post(f"http://127.0.0.1:{port}/v2/models/iris/infer", content=body).content)
    assert whole > 8 << 20  # more than the socket buffers of both ends take
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(INFER + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(3)  # reading nothing, past the send timeout
        received = len(until_closed(sock))
    assert received < whole


def test_a_connection_past_the_limit_is_refused_at_once(serve: Serve) -> None:
    """Connections that never finished a request were kept, and once the process ran out of
    files new ones were reset, and /metrics failed. Past the limit a connection is answered
    503 at once, before it sends anything, and closed; a slot that frees is used again."""
    port = serve(max_connections=3)
    held = [connect(port) for _ in range(3)]
    try:
        with connect(port) as refused:
            status, headers, error = error_answer(until_closed(refused))
        assert status == 503 and headers["retry-after"] == "1"
        assert "limit of 3 connections (MODELPILOT_MAX_CONNECTIONS)" in error
        assert not any(waiting(sock) for sock in held)  # accepted, and waited on
        held.pop().close()
        end = time.monotonic() + 10
        while True:  # as soon as the server has seen that one go
            answer = httpx.get(f"http://127.0.0.1:{port}/v2/health/live")
            if answer.status_code == 200 or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert answer.status_code == 200
    finally:
        for sock in held:
            sock.close()


@pytest.mark.slow
def test_the_open_file_limit_bounds_the_connections(
    served_registry: Registry, tmp_path: Path
) -> None:
    """``modelpilot serve`` under ``ulimit -n 240``: connections sending a header byte now
    and then made it run out of files (every new connection was reset, /metrics failed with
    EMFILE). It now keeps room for (240 - 100) / 2 = 70 per port, says so, refuses the rest
    at once, and closes the slow ones at the header timeout."""
    http, grpc_port = free_port(), free_port()
    command = serve_command(served_registry, http, grpc_port)
    log = tmp_path / "server.log"
    env = {**os.environ, "MODELPILOT_HEADER_TIMEOUT_SECONDS": "5"}
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            ["sh", "-c", 'ulimit -n 240 && exec "$@"', "sh", *command], env=env, stderr=stderr
        )
    server = Server(process, http, grpc_port)
    slow: list[socket.socket] = []
    try:
        end = time.monotonic() + 60
        while not _ready(server):
            assert process.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)  # the readiness checks' connections are gone
        for _ in range(100):
            sock = connect(http)
            sock.sendall(INFER)
            slow.append(sock)
        time.sleep(0.5)
        refused = [answer for answer in map(waiting, slow) if answer]
        assert len(refused) == 30
        assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in refused)
        url = f"{server.url}/v2/models/iris/infer"
        assert httpx.post(url, content=BODY).status_code == 503
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # its own room
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        end = time.monotonic() + 30
        while httpx.post(url, content=BODY).status_code == 503:
            # Until the slow ones' header timeout frees their slots.
            assert time.monotonic() < end
            time.sleep(0.2)
        metrics = httpx.get(f"{server.url}/metrics", timeout=10)
        assert "modelpilot_process_resident_memory_bytes" in metrics.text
    finally:
        for sock in slow:
            sock.close()
        stop(server)
    written = log.read_text()
    assert "open-file limit (ulimit -n) of 240 leaves room for 70 connections" in written
    assert "Too many open files" not in written and "Traceback" not in written


def _ready(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
