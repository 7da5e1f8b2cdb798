"""The REST port's bound on a request's line and headers (``GuardedHttpProtocol``), through
uvicorn on real sockets: a 100 MB header was taken (200) after 10 s of the event loop's time,
which every other client waited for."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.server.rest.connection_limits import GuardedHttpProtocol, HttpLimits
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import free_port, make_settings
from tests.server.conftest import LoopThread, serve_http
from tests.server.test_runner_limits import BODY, error_answer

LIMITS = HttpLimits(max_connections=100, header_timeout=30, body_timeout=30, send_timeout=30)

Serve = Callable[..., int]


@pytest.fixture
def engine(served_registry: Registry, loop_thread: LoopThread) -> Iterator[InferenceEngine]:
    engine = InferenceEngine(served_registry, make_settings(served_registry))
    loop_thread.run(engine.start())
    yield engine
    loop_thread.run(engine.stop())


@pytest.fixture
def monitoring(engine: InferenceEngine) -> Iterator[ProcessMonitoring]:
    monitoring = ProcessMonitoring.for_engine(engine)
    yield monitoring
    monitoring.stop()


@pytest.fixture
def serve(
    engine: InferenceEngine, monitoring: ProcessMonitoring, loop_thread: LoopThread
) -> Iterator[Serve]:
    """Starts the REST app with the given fields of its limits on top of ``LIMITS``, its
    refusals counted by the engine; returns its port."""
    stops = []

    def start(**limits: Any) -> int:
        port = free_port()
        protocol = GuardedHttpProtocol.with_limits(dataclasses.replace(LIMITS, **limits), engine)
        app = create_app(engine, engine.settings, monitoring)
        stops.append(serve_http(loop_thread, app, port, http=protocol))
        return port

    yield start
    for stop in stops:
        stop()


def request(
    path: bytes = b"/v2/models/iris/infer", headers: bytes = b"", close: bool = True
) -> bytes:
    """A prediction for iris to ``path``, with ``headers``; the last of its connection's
    (``Connection: close``) unless not ``close``."""
    if close:
        headers += b"Connection: close\r\n"
    return b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s" % (
        path,
        headers,
        len(BODY),
        BODY,
    )


def exchange(port: int, data: bytes) -> bytes:
    """Sends ``data`` whole, then reads until the server closes (within 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def statuses(received: bytes) -> list[int]:
    """The statuses of the answers in ``received``, in order."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def count(monitoring: ProcessMonitoring, model: str, status: str) -> float:
    monitoring.service.flush()
    labels = {"model": model, "version": "unknown", "transport": "rest", "status": status}
    return monitoring.registry.get_sample_value("modelpilot_requests_total", labels) or 0


def test_a_huge_header_gets_431_at_once_while_others_are_served(serve: Serve) -> None:
    """The client gets its answer as soon as the limit is past, without sending the rest of
    its header, and with the connection closed cleanly (no reset): it can read the answer
    whatever it still sends. A health probe on another connection is answered meanwhile."""
    port = serve()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20))
        probe = httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=10)
        assert probe.status_code == 200
        sock.settimeout(10)
        received = b""
        while chunk := sock.recv(65536):  # the server closes its end: the head is not over
            received += chunk
        status, headers, error = error_answer(received)
        assert status == 431 and headers["connection"] == "close"
        assert "line and headers are over the limit of 65536 bytes" in error
        sock.sendall(b"a" * (1 << 20))  # read and dropped: no reset
    received = exchange(port, request(headers=b"X-Big: " + b"a" * (8 << 20) + b"\r\n"))
    assert statuses(received) == [431]


def test_heads_within_the_limit_are_served(serve: Serve) -> None:
    port = serve()
    for headers in (
        b"",
        b"X-Big: " + b"a" * (16 << 10) + b"\r\n",
        b"".join(b"X-Many-%d: %s\r\n" % (i, b"b" * 100) for i in range(500)),  # 55 KB
    ):
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            content=BODY,
            headers=dict(line.split(": ") for line in headers.decode().split("\r\n") if line),
        )
        assert answer.status_code == 200, answer.text


def test_the_limit_is_the_whole_head_to_the_byte(serve: Serve) -> None:
    """The request line and every header count, the blank line that ends them too, whether
    the head comes alone, with its body, or a byte at a time."""
    port = serve(max_head_bytes=1000)
    head = request(headers=b"X-Pad: \r\n")[: -len(BODY)]
    pad = b"a" * (1000 - len(head))
    exact = request(headers=b"X-Pad: " + pad + b"\r\n")
    assert exact.index(b"\r\n\r\n") + 4 == 1000
    assert statuses(exchange(port, exact)) == [200]
    over = request(headers=b"X-Pad: " + pad + b"a\r\n")
    assert statuses(exchange(port, over)) == [431]
    many = b"".join(b"X-%d: v\r\n" % i for i in range(200))  # none long, all too many
    assert statuses(exchange(port, request(headers=many))) == [431]
    assert statuses(exchange(port, request(path=b"/predict/" + b"a" * 1000))) == [431]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for byte in range(len(exact)):
            sock.sendall(exact[byte : byte + 1])
        assert statuses(sock.recv(65536)) == [200]


def test_every_request_of_a_connection_has_its_own_room(serve: Serve) -> None:
    """Pipelined, in one send: the requests before a refused head are answered first."""
    port = serve(max_head_bytes=1000)
    fine = request(headers=b"X-Pad: " + b"a" * 500 + b"\r\n", close=False)
    last = request(headers=b"X-Pad: " + b"a" * 500 + b"\r\n")
    refused = request(headers=b"X-Pad: " + b"a" * 100_000 + b"\r\n")
    assert statuses(exchange(port, fine * 19 + last)) == [200] * 20
    assert statuses(exchange(port, fine * 3 + refused + last)) == [200, 200, 200, 431]


def test_refused_heads_of_predictions_are_counted(
    serve: Serve, monitoring: ProcessMonitoring
) -> None:
    """As a body over the limit is (413): under the model's label, and a model that does not
    exist is what the client hears of; other endpoints' are no model's."""
    port = serve()
    big = b"X-Big: " + b"a" * (1 << 20) + b"\r\n"
    paths = [
        b"/v2/models/iris/infer",
        b"/v2/models/iris/versions/1/infer",
        b"/v2/models/%69ris/infer",
        b"/predict/iris",
        b"/predict/iris?q=" + b"a" * 1000,  # the path alone names the model
    ]
    for path in paths:
        assert statuses(exchange(port, request(path, big))) == [431]
    assert count(monitoring, "iris", "431") == len(paths)
    errors = {"model": "iris", "version": "unknown", "kind": "HeadersTooLarge"}
    assert monitoring.registry.get_sample_value("modelpilot_errors_total", errors) == len(paths)
    received = exchange(port, request(b"/v2/models/made-up/infer", big))
    assert statuses(received) == [404]
    assert count(monitoring, "(unknown)", "404") == 1
    # A request line that does not end within the limit names no model.
    for path in (b"/v2/repository/index", b"/predict/iris?q=" + b"a" * (1 << 20)):
        assert statuses(exchange(port, request(path, big))) == [431]
    assert count(monitoring, "iris", "431") == len(paths)


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: -1",
        b"Content-Length: 1e3",
        b"Content-Length: 18446744073709551616",
        b"X-No-Colon",
    ],
)
def test_a_head_the_parser_refuses_is_answered_as_every_error_is(serve: Serve, head: bytes) -> None:
    """uvicorn's parser refused these before the app saw them, with the text "Invalid HTTP
    request received.", where the README says errors are {"error": ...}."""
    port = serve()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /predict/iris HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n{}")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status, headers, error = error_answer(received)
    assert status == 400 and headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert error.startswith("the request is not valid HTTP/1.1: its request line or headers")
