"""The gRPC server: ModelPilot's own HTTP/2 front by default, grpcio's asyncio server on request.

Both serve the same :class:`InferenceServicer` and map errors the same way. The native one
(:mod:`http2` and :mod:`calls`) answers unary calls several times faster than grpc.aio, whose
per-call machinery costs more than a fast model; ``MODELPILOT_GRPC_SERVER=grpcio`` switches
back to grpc.aio, a server every gRPC client has met, should one meet something the native
front does not handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any, Protocol, cast

from google.protobuf.message import Message

from modelpilot.config import Settings
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.server.grpc.calls import (
    CallFailed,
    GrpcCalls,
    count_refused,
    decode_message,
    too_large,
    trailers_only,
)
from modelpilot.server.grpc.errors import Status, status_of
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.http2 import DEFAULT_LIMITS, Http2Connection, Http2Limits
from modelpilot.server.grpc.http2_refusal import REFUSAL_WAIT, RefusedConnection
from modelpilot.server.grpc.servicer import (
    INFER,
    NOT_STREAMED,
    REQUEST_ID,
    SERVICE,
    STREAM_INFER,
    InferenceServicer,
    Method,
    adopt_request_id,
    echoed_id,
    id_metadata,
    methods,
)
from modelpilot.server.sockets import bind_socket
from modelpilot.serving.engine import InferenceEngine


class GrpcServer(Protocol):
    """What the runner needs of either server."""

    async def start(self) -> None: ...

    async def stop(self, grace: float | None) -> None: ...


def create_grpc_server(
    engine: InferenceEngine,
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
    monitoring: ProcessMonitoring | None = None,
) -> tuple[GrpcServer, int]:
    """A bound, not yet started, server; port 0 picks a free one (returned).

    ``reuse_port`` lets worker processes bind the same port; the kernel spreads the
    connections among them.
    """
    servicer = InferenceServicer(engine, monitoring)
    sock = bind_socket(
        host or settings.host, settings.grpc_port if port is None else port, reuse_port
    )
    bound = int(sock.getsockname()[1])
    if settings.grpc_server == "grpcio":
        return _grpcio_server(servicer, settings, sock), bound
    calls = GrpcCalls(servicer, settings.grpc_max_message_bytes)
    return NativeGrpcServer(calls, sock, Http2Limits.from_settings(settings)), bound


REFUSALS = 64
"""Connections past the limit that a server holds at once to tell them why (each for a
second or two); one more is sent away with GOAWAY alone, so that refusals hold few files."""

CUT_OFF = (
    "the server is shutting down: this call was still running when its shutdown grace period "
    "(MODELPILOT_SHUTDOWN_GRACE_SECONDS) ended; send it again, to another server"
)


class NativeGrpcServer:
    """Unary gRPC calls over :class:`Http2Connection`, on the running event loop."""

    def __init__(
        self, calls: GrpcCalls, sock: socket.socket, limits: Http2Limits = DEFAULT_LIMITS
    ) -> None:
        self.calls = calls
        self.sock = sock
        self.limits = limits
        self.connections: set[Http2Connection] = set()
        self.refusing: set[RefusedConnection] = set()
        self._server: asyncio.Server | None = None
        # What a call on a connection past the limit is answered, as REST answers 503 with
        # Retry-After: a status that the client takes as the call's outcome (GOAWAY alone it
        # takes as a reason to connect again, and again, until its deadline).
        self._refusal = Status(
            "UNAVAILABLE",
            f"the server holds its limit of {limits.max_connections} connections "
            "(MODELPILOT_MAX_CONNECTIONS); try again shortly, or another server",
            (("retry-after", "1"),),
        )
        self._refusal_block = trailers_only(self._refusal)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # A request body may carry the message's 5-byte prefix on top of the message.
        limit = self.calls.max_message + 5

        def connection() -> Http2Connection | RefusedConnection:
            if len(self.connections) >= self.limits.max_connections:
                return self._refused()
            made = Http2Connection(
                self.calls,
                limit,
                self.connections.discard,
                self.calls.answers_at_once,
                limits=self.limits,
            )
            self.connections.add(made)
            return made

        self._server = await loop.create_server(connection, sock=self.sock)

    def _refused(self) -> RefusedConnection:
        wait = REFUSAL_WAIT if len(self.refusing) < REFUSALS else 0.0
        made = RefusedConnection(
            self._refusal_block, self._refusal.message, self.refusing.discard, wait
        )
        self.refusing.add(made)
        return made

    async def stop(self, grace: float | None) -> None:
        """Stop accepting; GOAWAY to every client; wait ``grace`` seconds for their calls."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self.connections):
            connection.goaway()
        pending = [c.closed for c in self.connections if not c.closed.done()]
        if pending and grace:
            await asyncio.wait(pending, timeout=grace)
        # What is still running gets UNAVAILABLE with a reason, not a dropped connection
        # (which clients report as "Stream removed").
        cut_off = trailers_only(Status("UNAVAILABLE", CUT_OFF))
        for connection in list(self.connections):
            connection.cut_off(cut_off)
        pending = [c.closed for c in self.connections if not c.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=1)
        for connection in list(self.connections):
            connection.abort()
        for refused in list(self.refusing):
            refused.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=1)
        self._server = None


GRPCIO_RECEIVE_FACTOR = 2
"""grpcio's own limit on a request message, as a multiple of ``grpc_max_message_bytes``:
messages up to it are refused (and counted) by the handler; over it, grpcio refuses them
itself, uncounted."""


def _grpcio_server(servicer: InferenceServicer, settings: Settings, sock: socket.socket) -> Any:
    import grpc

    limit = settings.grpc_max_message_bytes
    host, port = sock.getsockname()[:2]
    # grpc.aio binds its own socket; this one only reserved the port (and picked it for 0).
    sock.close()
    server = grpc.aio.server(
        options=[
            # Above ours, so that a message over ours reaches the handler, which refuses it
            # and counts it as the native front does (grpcio refuses what is over its own
            # limit before any handler runs, counted nowhere); bounded, as grpcio holds the
            # whole message before the handler sees it.
            ("grpc.max_receive_message_length", min(GRPCIO_RECEIVE_FACTOR * limit, 2**31 - 1)),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 1),
        ]
    )
    # Requests come as bytes (no request_deserializer): a message that does not parse is
    # then counted as the native front counts it, not answered by grpcio unseen.
    handlers = {
        method.path.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
            _with_status(method, servicer.engine, limit),
            response_serializer=lambda message: message.SerializeToString(),
        )
        for method in methods(servicer).values()
    }
    # Answered as the native front answers it, saying what to use instead (grpcio's own
    # answer to a method it lacks is "Method not found!").
    handlers[STREAM_INFER.rsplit("/", 1)[1]] = grpc.stream_stream_rpc_method_handler(_not_streamed)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    return server


def _with_status(method: Method, engine: InferenceEngine, limit: int) -> Any:
    import grpc

    infer = method.path == INFER

    async def call(data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        sent = _request_id(context) if infer else None
        request: Message | None = None
        try:
            if len(data) > limit:
                raise too_large(limit)
            request = decode_message(method, data)
            if infer:
                adopt_request_id(cast(pb.ModelInferRequest, request), sent)
            response = await method.call(request)
        except Exception as exc:
            if isinstance(exc, CallFailed):
                status = exc.status
                if infer:
                    await count_refused(engine, exc, started)
            else:
                status = status_of(exc, method.path)
            metadata = status.metadata + (echoed_id(request, sent) if infer else ())
            if metadata:
                context.set_trailing_metadata(metadata)
            await context.abort(grpc.StatusCode[status.name], status.message)
        if infer:
            answered = id_metadata(cast(pb.ModelInferResponse, response).id)
            if answered:
                await context.send_initial_metadata(answered)
        return response

    return call


async def _not_streamed(requests: Any, context: Any) -> None:
    import grpc

    await context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_STREAMED)


def _request_id(context: Any) -> str | None:
    """The call's ``x-request-id`` metadata, if it has one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID:
            return str(value)
    return None
