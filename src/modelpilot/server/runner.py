"""Running one server process: engine, REST and gRPC on one event loop, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from modelpilot.config import Settings
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.rest import create_app
from modelpilot.server.rest.connection_limits import GuardedHttpProtocol, HttpLimits
from modelpilot.server.sockets import bound_socket, listen
from modelpilot.server.supervisor import hangup_stops, serving_mark
from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger("modelpilot.server")

CUT_OFF_SECONDS = 5.0
"""How long the requests cut off at the end of the shutdown grace get to be answered (503),
and the gRPC server to close its connections."""

THREADS_END_SECONDS = 0.25
"""How long a stopped server waits for its threads to end before exiting without them."""

REPEATED_SIGNAL_SECONDS = 1.0
"""A signal of the kind that began the shutdown, arriving within this long of it, is the
same stop request delivered twice, not a second one: systemd's default (KillMode=
control-group) and ``kill -TERM -PGID`` signal every process of a ``serve --workers`` at once,
and the supervisor passes the signal on too (within its 0.2 s watch), so each worker got two
SIGTERMs milliseconds apart and took the second as "end the drain now": no drain at all. A
second signal sent on purpose comes later, or is of the other kind (SIGINT after SIGTERM)."""

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
    """uvicorn without its own signal handlers (this process decides how to shut down), and
    with a way to close its port that serves the connections queued on it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own handlers (since 0.29) closed the port at the first signal, whatever
        # this process did with it, and raised the signal again once uvicorn had stopped.
        yield

    async def stop_accepting(self, listener: socket.socket) -> int:
        """Stop taking connections, and serve those the kernel has queued on ``listener`` (the
        listening socket, a handle of its own) rather than reset them; how many there were.

        The kernel completes a client's handshake before the server accepts it, and the
        client sends its request at once: closing the listening socket reset every
        connection in its queue, after its request was written (a balancer's 502).
        Accepted here, each is answered and then closed (``GuardedHttpProtocol.shutdown``);
        a connection that comes after the last accept is refused, which a client or
        balancer may safely retry.
        """
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        # What uvicorn's startup builds for each connection (its class is typed asyncio's).
        protocol = functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        taken = 0
        try:
            listener.setblocking(False)
            while True:
                try:
                    connection, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # out of files: the rest are reset, as they were
                    logger.warning("could not take a queued connection: %s", exc)
                    break
                await loop.connect_accepted_socket(protocol, connection)
                taken += 1
        finally:
            listener.close()
        return taken


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


async def serve_async(
    settings: Settings,
    models: Sequence[ModelRef] = (),
    http_socket: socket.socket | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM, SIGINT or SIGHUP (as SIGTERM), then shut down: answer not-ready,
    on SIGTERM go on serving for the drain period, stop accepting, finish what is in flight
    for up to the shutdown grace, answer what is still running 503 (gRPC: UNAVAILABLE), flush
    monitoring, return."""
    ports = 2 if settings.grpc_port else 1
    settings = settings.model_copy(update={"max_connections": connection_limit(settings, ports)})
    registry = Registry.open(settings.registry, settings.artifacts)
    engine = InferenceEngine(registry, settings, models)
    monitoring = None
    # Bound now, so that a port in use fails before the models load; listening only once
    # they have (see ``bound_socket``): a worker started in place of one that died shares the
    # port with its siblings, and the connections it was dealt waited for its whole load.
    sock = http_socket or bound_socket(settings.host, settings.http_port, reuse_port)
    # The listening socket, open after uvicorn closes its own handle: see stop_accepting.
    listener = sock.dup()
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
        protocol = GuardedHttpProtocol.with_limits(HttpLimits.from_settings(settings), engine)
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
            http=protocol,
        )
        server = _Server(config)
        if settings.grpc_port:
            grpc_server, grpc_port = create_grpc_server(
                engine, settings, reuse_port=reuse_port, monitoring=monitoring
            )
            await grpc_server.start()
        requests = StopRequests()
        stop, signals = requests.stop, requests.signals
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, requests, sig)
        if hangup_stops():
            loop.add_signal_handler(signal.SIGHUP, requests.hangup)
        listen(sock)  # uvicorn accepts from its start below; the kernel queues until then
        if settings.worker_dir is not None:
            # Told to the supervisor, which stops no serving worker for one that cannot start.
            serving_mark(settings.worker_dir, os.getpid()).touch()
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
        # Readiness goes first, so that load balancers stop sending while requests finish.
        engine.mark_stopping()
        if signals[0] == signal.SIGTERM and settings.shutdown_drain_seconds:
            await _drain(settings.shutdown_drain_seconds, stop, signals, http_task, protocol)
        logger.info("shutting down: finishing in-flight requests")
        engine.mark_closed()
        taken = await server.stop_accepting(listener)
        if taken:
            logger.info("serving %d connection(s) queued as the port closed", taken)
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
        listener.close()
        logger.info("stopped")


class StopRequests:
    """The stop signals this process got (``signals``, in order), each stop request once;
    ``stop`` is set at each.

    A signal of the kind that began the shutdown, again within ``REPEATED_SIGNAL_SECONDS``,
    is that request delivered twice (see there), not a second one that ends the drain."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.signals: list[int] = []
        self.stop = asyncio.Event()
        self._clock = clock
        self._first_at = 0.0

    def __call__(self, signum: int) -> None:
        now = self._clock()
        repeated = bool(self.signals) and signum == self.signals[0]
        if repeated and now - self._first_at < REPEATED_SIGNAL_SECONDS:
            logger.info(
                "signal %d again within %g s of the first: the same stop request",
                signum,
                REPEATED_SIGNAL_SECONDS,
            )
            return
        if not self.signals:
            self._first_at = now
        self.signals.append(signum)
        self.stop.set()

    def hangup(self) -> None:
        """SIGHUP: a stop request as SIGTERM's (drained), and the same request as a SIGTERM
        that comes with it (a process manager's stop often sends both)."""
        logger.info("SIGHUP: stopping as on SIGTERM")
        self(signal.SIGTERM)


async def _drain(
    seconds: float,
    stop: asyncio.Event,
    signals: list[int],
    http_task: asyncio.Task[None],
    protocol: type[GuardedHttpProtocol],
) -> None:
    """Go on serving, not ready, for ``seconds`` or until another signal comes.

    A load balancer only learns that a server is stopping at its next health check, and a
    Kubernetes Service once the endpoint change reaches every node; until then it sends
    requests, which closed ports would refuse (or reset, once queued). REST and gRPC serve on
    meanwhile. Each REST answer closes its connection, so that a client's next request opens
    a new one, which goes to another server once the balancer has taken note, and none is
    idle when the ports close.
    """
    logger.info(
        "shutting down: not ready, serving on for %g s (MODELPILOT_SHUTDOWN_DRAIN_SECONDS) "
        "so that load balancers stop sending first; a second signal (%g s or more after "
        "the first) ends this",
        seconds,
        REPEATED_SIGNAL_SECONDS,
    )
    protocol.closing = True
    stop.clear()
    if len(signals) > 1:
        return  # the second came already
    again = asyncio.create_task(stop.wait())
    await asyncio.wait({again, http_task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    again.cancel()


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
