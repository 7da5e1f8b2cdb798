"""Shutting down behind a load balancer: on SIGTERM a server answers not-ready but serves on
for the drain period, and the connections queued as its port closes are answered, not reset."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.server.rest.connection_limits import GuardedHttpProtocol, HttpLimits
from modelpilot.server.runner import REPEATED_SIGNAL_SECONDS, StopRequests, _Server
from modelpilot.server.sockets import bind_socket
from tests.conftest import free_port
from tests.processes import Server, serve_command, start, stop
from tests.server.conftest import LoopThread

pytestmark = pytest.mark.slow

DRAIN = {"MODELPILOT_SHUTDOWN_DRAIN_SECONDS": "60"}
"""Longer than any test takes: each ends the drain with a second signal."""

INFO = ("--log-level", "info")  # the line that tells of the drain


def ready(url: str) -> int:
    """The readiness answer, on a connection of its own (a balancer's health check)."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"{url}/v2/health/ready").status_code


def predict(url: str) -> httpx.Response:
    """A prediction on a connection of its own, as a balancer's new connection sends it."""
    with httpx.Client(timeout=10) as client:
        return client.post(f"{url}/predict/slow", json={"data": [[0.0, 0.0]]})


def wait_not_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    while ready(url) == 200:
        assert time.monotonic() < deadline, "still ready 20 s after SIGTERM"
        time.sleep(0.05)


def exited(server: Server) -> int:
    try:
        return server.process.wait(30)
    finally:
        stop(server)


def test_sigterm_answers_not_ready_and_serves_on_until_the_drain_ends(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """The listener closed at the instant readiness turned 503, so no balancer could see the
    503 before its requests were refused, or reset when the kernel had queued them."""
    log = tmp_path / "server.log"
    server = start(registry, *INFO, env=DRAIN, log=log)
    with httpx.Client(timeout=10) as pooled:  # a balancer's kept-alive connection
        assert pooled.post(f"{server.url}/predict/slow", json={"data": [[0.0, 0.0]]}).is_success
        server.process.send_signal(signal.SIGTERM)
        wait_not_ready(server.url)
        assert ready(server.url) == 503
        assert httpx.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
        for _ in range(5):
            answer = predict(server.url)
            assert answer.status_code == 200
            assert answer.json()["predictions"] == [float(server.process.pid)]
            # Its next request opens a new connection: none is idle as the port closes.
            assert answer.headers["connection"] == "close"
        kept = pooled.post(f"{server.url}/predict/slow", json={"data": [[0.0, 0.0]]})
        assert kept.status_code == 200 and kept.headers["connection"] == "close"
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    try:
        assert client.is_server_live() and not client.is_server_ready()
        tensor = grpcclient.InferInput("input-0", [1, 2], "FP64")
        tensor.set_data_from_numpy(np.array([[0.0, 0.0]]))
        assert client.infer("slow", [tensor]).as_numpy("predict")[0] == server.process.pid
    finally:
        client.close()
    assert server.process.poll() is None  # the drain goes on, 60 s...
    server.process.send_signal(signal.SIGINT)  # ...until a second signal
    assert exited(server) == 0
    written = log.read_text()
    assert "MODELPILOT_SHUTDOWN_DRAIN_SECONDS" in written
    assert "Traceback" not in written


def test_workers_drain_on_sigterm_to_the_supervisor(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    server = start(registry, "--workers", "2", *INFO, env=DRAIN, log=log)
    try:
        # Ready answers once one worker serves; a worker still starting stops at a signal.
        deadline = time.monotonic() + 30
        while log.read_text().count("modelpilot.server: serving") < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        deadline = signalled + 20
        answered = 0
        # New connections, each to whichever worker the kernel picks (which worker is not
        # up to the test: under load one may take them all); the log shows both drained.
        while answered < 5:
            assert time.monotonic() < deadline, f"only {answered} answered while draining"
            if ready(server.url) == 503:
                assert predict(server.url).status_code == 200
                answered += 1
        assert server.process.poll() is None
        # A second signal, not the first repeated: passed on, it ends the workers' drain.
        # (Each worker counts from when the supervisor passed the first on, which a loaded
        # machine may delay: a second later than the window, to be past it for every worker.)
        time.sleep(max(signalled + REPEATED_SIGNAL_SECONDS + 1.0 - time.monotonic(), 0.0))
        server.process.send_signal(signal.SIGTERM)
        assert exited(server) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    written = log.read_text()
    assert written.count("MODELPILOT_SHUTDOWN_DRAIN_SECONDS") == 2  # both workers drained
    assert "Traceback" not in written and "did not stop in time" not in written


def test_ctrl_c_skips_the_drain(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    server = start(registry, *INFO, env=DRAIN, log=log)
    server.process.send_signal(signal.SIGINT)
    assert exited(server) == 0  # within the 30 s it is given, not after the 60 s drain
    assert "serving on for" not in log.read_text()


async def answer_ok(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def read_all(connection: socket.socket) -> bytes:
    """What the server sends until it closes the connection (ConnectionResetError if it
    resets it)."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class UvloopThread(LoopThread):
    """uvloop's event loop, as ``serve`` runs, in a background thread."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    running = UvloopThread() if request.param == "uvloop" else LoopThread()
    yield running
    running.close()


class WatchedServer(_Server):
    """Tells when uvicorn's shutdown begins (it closes every connection that is idle)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.shutting_down = threading.Event()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.shutting_down.set()
        await super().shutdown(sockets)


def test_connections_queued_as_the_port_closes_are_answered(loop: LoopThread) -> None:
    """Connections the kernel had queued on the listening socket when it closed were reset,
    after their clients had sent their requests; and one accepted just before the server
    stopped but with its request still to come was closed, and its request reset too."""
    sock = bind_socket("127.0.0.1", 0, reuse_port=False)
    listener = sock.dup()
    port = sock.getsockname()[1]
    limits = HttpLimits(max_connections=100, header_timeout=10, body_timeout=10, send_timeout=10)
    config = uvicorn.Config(
        answer_ok,
        log_level="warning",
        lifespan="off",
        http=GuardedHttpProtocol.with_limits(limits),
    )
    server = WatchedServer(config)
    serving = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop.loop)
    blocked = threading.Event()

    async def close_while_queued() -> int:
        blocked.set()
        # Blocking on purpose: the loop takes no connection meanwhile, the kernel queues them.
        time.sleep(0.5)  # noqa: ASYNC251
        taken = await server.stop_accepting(listener)
        server.should_exit = True
        return taken

    clients = []
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        closing = asyncio.run_coroutine_threadsafe(close_while_queued(), loop.loop)
        assert blocked.wait(10)
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            clients.append(client)
        late = socket.create_connection(("127.0.0.1", port), timeout=10)
        clients.append(late)
        assert closing.result(10) == 6
        assert server.shutting_down.wait(10)
        time.sleep(0.05)  # uvicorn has told every connection to close by now
        late.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        for client in clients:
            answer = read_all(client)  # then closed, not reset
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"ok"), answer
        serving.result(10)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10)
    finally:
        server.should_exit = True  # also when the test failed: the loop closes after it
        with contextlib.suppress(Exception):
            serving.result(10)
        for client in clients:
            client.close()
        sock.close()
        listener.close()


def test_a_signal_repeated_at_once_is_one_stop_request() -> None:
    """Each worker of ``serve --workers`` stopped by systemd (KillMode=control-group) or
    ``kill -TERM -PGID`` gets SIGTERM twice, its own and the supervisor's, milliseconds
    apart: the second was taken as the one that ends the drain."""
    now = [100.0]
    requests = StopRequests(clock=lambda: now[0])
    requests(signal.SIGTERM)
    now[0] += 0.01
    requests(signal.SIGTERM)  # the supervisor's copy
    assert requests.signals == [signal.SIGTERM]
    now[0] += REPEATED_SIGNAL_SECONDS
    requests(signal.SIGTERM)  # sent on purpose, later: it ends the drain
    assert requests.signals == [signal.SIGTERM, signal.SIGTERM]


def test_sigint_after_sigterm_ends_the_drain_at_once() -> None:
    requests = StopRequests(clock=lambda: 0.0)
    requests(signal.SIGTERM)
    requests(signal.SIGINT)
    assert requests.signals == [signal.SIGTERM, signal.SIGINT]


def test_workers_drain_on_sigterm_to_the_whole_process_group(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """systemd's default KillMode=control-group signals every process of the unit at once,
    as does ``kill -TERM -PGID``: the workers stopped 12 ms later, without a drain."""
    log = tmp_path / "server.log"
    http, grpc = free_port(), free_port()
    command = serve_command(registry, http, grpc, "--workers", "2", *INFO)
    env = {**os.environ, **DRAIN}
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stderr=stderr, start_new_session=True)
    server = Server(process, http, grpc)
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("modelpilot.server: serving") < 2:
            assert process.poll() is None and time.monotonic() < deadline, "workers not up"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)  # the supervisor and both workers
        wait_not_ready(server.url)
        time.sleep(1.5)  # past the supervisor's copy of the signal
        assert "finishing in-flight" not in log.read_text(), "a worker skipped its drain"
        for _ in range(5):  # the port is open, whichever worker the kernel picks
            assert predict(server.url).status_code == 200
        process.send_signal(signal.SIGTERM)  # a second signal, on purpose: ends the drain
        assert exited(server) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    written = log.read_text()
    assert written.count("MODELPILOT_SHUTDOWN_DRAIN_SECONDS") == 2  # both workers drained
    assert "Traceback" not in written and "did not stop in time" not in written
