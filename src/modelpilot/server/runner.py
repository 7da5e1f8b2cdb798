"""Running one server process: engine, REST and gRPC on one event loop, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
import uvicorn

from modelpilot.config import Settings
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.rest import create_app
from modelpilot.server.rest.protocol import CoalescingHttpProtocol
from modelpilot.server.sockets import bind_socket
from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger("modelpilot.server")

CUT_OFF_SECONDS = 5.0
"""How long the requests cut off at the end of the shutdown grace get to be answered (503),
and the gRPC server to close its connections."""

THREADS_END_SECONDS = 0.25
"""How long a stopped server waits for its threads to end before exiting without them."""

KEEP_ALIVE_SECONDS = 5
"""How long a REST connection may wait between an answer and its next request (uvicorn's)."""

FILES_KEPT = 100
"""Open files a server process keeps for itself (models, the registry and its logs, the
monitoring's pipes) before its open-file limit decides how many connections it may hold;
a tenth of the limit when that is more."""


def tune_gc() -> None:
    """Keep the garbage collector off the tail latency.

    Each request allocates a few hundred short-lived objects; with the default thresholds the
    collector then runs full passes over every object the loaded libraries and models hold,
    which showed as 60 ms p99 spikes under load. Freezing what exists after start-up takes
    those objects out of every later pass, and a higher first threshold makes passes rarer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: this process decides how to shut down."""

    def install_signal_handlers(self) -> None:
        return None


def connection_limit(settings: Settings, ports: int) -> int:
    """``settings.max_connections``, lowered to what the process's open-file limit leaves room
    for on each of ``ports`` ports.

    Past that limit, accepting a connection fails (EMFILE): clients were reset, and so was
    everything else that opens a file, /metrics and the monitoring among them.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.max_connections
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = max(1, (soft - max(FILES_KEPT, soft // 10)) // ports)
    if room >= wanted:
        return wanted
    logger.warning(
        "the open-file limit (ulimit -n) of %d leaves room for %d connections per port, "
        "fewer than MODELPILOT_MAX_CONNECTIONS (%d); raise the limit to hold more",
        soft,
        room,
        wanted,
    )
    return room


@dataclass(frozen=True)
class HttpLimits:
    """What a REST client may take: connections of one server, time for a request and for
    taking its answer."""

    max_connections: int
    header_timeout: float
    body_timeout: float
    send_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            settings.max_connections,
            settings.header_timeout_seconds,
            settings.body_timeout_seconds,
            settings.send_timeout_seconds,
        )


class GuardedHttpProtocol(CoalescingHttpProtocol):
    """uvicorn's HTTP/1.1 protocol with the limits uvicorn lacks: time for a request's headers
    and body, and a number of connections.

    uvicorn closes a connection that waits for its next request (``timeout_keep_alive``), but
    not one that never finishes a request: a client sending a byte now and then, or nothing,
    held its connection and what it had sent for ever, and enough of them took every file the
    process may open. Here a request's line and headers must come within the header timeout
    (counted from the connection's start for its first request, else from the request's first
    byte), and its body within the body timeout of its headers; past either the client gets
    408 and the connection is closed (a connection that sent nothing is just closed). While
    the server itself holds a request up (pipelined behind another, or its body not read
    yet), its clock starts again. A client that takes nothing of its answers for the send
    timeout (the server holding more than uvicorn's high-water mark for it) is dropped: its
    answer was kept for as long as it kept the connection. A connection past
    ``max_connections`` is answered 503 and closed at once, before it sends anything.

    One timer per connection: a request only notes its deadline, and the timer, when it
    fires, either acts or waits for the deadline noted by then.
    """

    limits: ClassVar[HttpLimits]

    @classmethod
    def with_limits(cls, limits: HttpLimits) -> type[GuardedHttpProtocol]:
        """The protocol class for a server with ``limits`` (uvicorn takes a class)."""
        return type(cls.__name__, (cls,), {"limits": limits})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # for the request being read; None between them
        self._waiting_for = "a request"  # what the deadline is for: "headers" or "body" next
        self._stalled: asyncio.TimerHandle | None = None  # while the client takes nothing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limits.max_connections
        if len(self.connections) > limit:
            logger.debug("refused a connection: %d are open", limit)
            self._answer_and_close(
                503,
                f"the server holds its limit of {limit} connections "
                "(MODELPILOT_MAX_CONNECTIONS); try again shortly, or another server",
            )
            return
        self._expect("a request", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._stalled):
            if timer is not None:
                timer.cancel()
        self._timer = self._stalled = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.limits.send_timeout, self._drop)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _drop(self) -> None:
        self._stalled = None
        logger.debug("dropping a connection whose client has taken nothing for a while")
        self.transport.abort()  # closing would wait for the client to read what is written

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._expect("headers", self.limits.header_timeout)
        else:
            self._waiting_for = "headers"  # the first request: timed from the connection

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._expect("body", self.limits.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline = None

    def handle_websocket_upgrade(self) -> None:
        self._deadline = None  # the connection is the WebSocket protocol's from now on
        super().handle_websocket_upgrade()

    def _expect(self, what: str, seconds: float) -> None:
        self._waiting_for = what
        deadline = self._deadline = self.loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return  # no request being read: uvicorn's keep-alive timeout, or the app's time
        now = self.loop.time()
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._expire)
            return
        limits = self.limits
        what = self._waiting_for
        if self.flow.read_paused:
            self._expect(what, limits.body_timeout if what == "body" else limits.header_timeout)
            return
        if what == "a request":
            self.transport.close()  # nothing came: nothing to answer
            return
        if what == "headers":
            message = (
                f"the request's line and headers did not all come within "
                f"{limits.header_timeout:g} s (MODELPILOT_HEADER_TIMEOUT_SECONDS)"
            )
            answered = False
        else:
            message = (
                f"the request's body did not all come within {limits.body_timeout:g} s of its "
                "headers (MODELPILOT_BODY_TIMEOUT_SECONDS); send it faster, or in smaller "
                "requests"
            )
            cycle = self.cycle
            answered = cycle.response_started
            # The app reading the body hears that the client is gone; its answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        logger.debug("closing a connection: %s", message)
        if answered:
            self.transport.close()
        else:
            self._answer_and_close(408, message)

    def _answer_and_close(self, status: int, message: str) -> None:
        body = orjson.dumps({"error": message})
        head = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        if status == 503:
            head.append("retry-after: 1")
        self.transport.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        self.transport.close()


async def serve_async(
    settings: Settings,
    models: Sequence[ModelRef] = (),
    http_socket: socket.socket | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain: not ready, stop accepting, finish what is in
    flight for up to the shutdown grace, answer what is still running 503 (gRPC: UNAVAILABLE),
    flush monitoring, return."""
    ports = 2 if settings.grpc_port else 1
    settings = settings.model_copy(update={"max_connections": connection_limit(settings, ports)})
    registry = Registry.open(settings.registry, settings.artifacts)
    engine = InferenceEngine(registry, settings, models)
    monitoring = None
    sock = http_socket or bind_socket(settings.host, settings.http_port, reuse_port)
    grpc_server = None
    try:
        await engine.start()
        # After the models are loaded: the monitoring process starting (a new interpreter
        # importing numpy and SQLAlchemy) would compete with their loading for the CPU.
        # Nothing is served before this, so no answer goes unobserved.
        monitoring = ProcessMonitoring.for_engine(engine, settings)
        monitoring.start()
        tune_gc()
        grace = settings.shutdown_grace_seconds
        app = create_app(engine, settings, monitoring)
        config = uvicorn.Config(
            app,
            log_level=settings.log_level,
            access_log=False,
            lifespan="off",
            # Only a backstop: the requests still running at the end of the grace are cut off
            # below, and answered, well before uvicorn would cancel them (answering 500).
            timeout_graceful_shutdown=math.ceil(grace + CUT_OFF_SECONDS),
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            http=GuardedHttpProtocol.with_limits(HttpLimits.from_settings(settings)),
        )
        server = _Server(config)
        if settings.grpc_port:
            grpc_server, grpc_port = create_grpc_server(
                engine, settings, reuse_port=reuse_port, monitoring=monitoring
            )
            await grpc_server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        host, port = sock.getsockname()[:2]
        logger.info(
            "serving %s on http://%s:%d (docs at /docs)%s",
            ", ".join(engine.served_models) or "no models yet",
            host,
            port,
            f" and gRPC on port {grpc_port}" if grpc_server else "",
        )
        http_task = asyncio.create_task(server.serve(sockets=[sock]))
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if http_task in done:
            http_task.result()  # uvicorn gave up (it logged why); surface it
            return
        logger.info("shutting down: finishing in-flight requests")
        # Readiness goes first, so that load balancers stop sending while requests finish.
        engine.mark_stopping()
        server.should_exit = True
        stops = [http_task]
        if grpc_server is not None:
            # Its in-flight calls end as UNAVAILABLE when it drops their connections at `grace`.
            stops.append(asyncio.create_task(grpc_server.stop(grace)))
        await asyncio.wait(stops, timeout=grace)
        cut = app.cut_off(
            "the server is shutting down: this request was still running when its shutdown "
            f"grace period of {grace:g} s (MODELPILOT_SHUTDOWN_GRACE_SECONDS) ended; "
            "send it again, to another server"
        )
        if cut:
            logger.warning("cut off %d HTTP request(s) still running after %g s", cut, grace)
        await asyncio.wait(stops, timeout=CUT_OFF_SECONDS)
    finally:
        stop_task_cleanup = [grpc_server.stop(0)] if grpc_server is not None else []
        for coro in stop_task_cleanup:
            with contextlib.suppress(Exception):
                await coro
        await engine.stop()
        # After the engine: every answered request is counted and in the monitor's queue by
        # now; the counts reach the (shared, with workers) metrics, and stopping the monitor
        # writes everything to the inference log.
        if monitoring is not None:
            monitoring.service.flush()
            await asyncio.to_thread(monitoring.stop)
        registry.close()
        sock.close()
        logger.info("stopped")


def serve(
    settings: Settings,
    models: Sequence[ModelRef] = (),
    http_socket: socket.socket | None = None,
    reuse_port: bool = False,
) -> None:
    """Run one server process in the foreground (uvloop when available)."""
    coro = serve_async(settings, models, http_socket, reuse_port)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    _exit_despite_stuck_threads()


def _exit_despite_stuck_threads() -> None:
    """Exit the process now if threads are still running after a clean stop.

    A model call cut off at the end of the shutdown grace goes on in its thread pool's thread
    (Python cannot stop a thread), and the interpreter joins such threads as it exits: a call
    stuck for minutes held the process for minutes after "stopped". Everything worth keeping
    is written by now (answers, metrics, the inference log), so once the log handlers are
    flushed ``os._exit`` leaves without joining them, with the status a normal return gives.
    A process whose threads all end exits the normal way.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # serving inside a program, not as one: not ours to end
    deadline = time.monotonic() + THREADS_END_SECONDS
    for thread in _other_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in _other_threads() if t.is_alive()]
    if not stuck:
        return
    logger.warning(
        "exiting without waiting for %d thread(s) still busy, likely with calls cut "
        "off at the end of the grace: %s",
        len(stuck),
        ", ".join(stuck),
    )
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _other_threads() -> list[threading.Thread]:
    """The threads the interpreter would wait for as it exits, but this one."""
    current = threading.current_thread()
    return [t for t in threading.enumerate() if t is not current and not t.daemon]
