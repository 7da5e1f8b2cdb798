"""Running one server process: engine, REST and gRPC on one event loop, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Sequence

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


async def serve_async(
    settings: Settings,
    models: Sequence[ModelRef] = (),
    http_socket: socket.socket | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain: not ready, stop accepting, finish, exit."""
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
        app = create_app(engine, settings, monitoring)
        config = uvicorn.Config(
            app,
            log_level=settings.log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
            server_header=False,
            proxy_headers=False,
            http=CoalescingHttpProtocol,
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
        grace = settings.shutdown_grace_seconds
        stops = [http_task]
        if grpc_server is not None:
            stops.append(asyncio.create_task(grpc_server.stop(grace)))
        await asyncio.wait(stops, timeout=grace + 5)
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
