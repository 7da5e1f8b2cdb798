"""Request size limits: the body's, enforced before and while it is read (413 past it), and
the error of the head's (431, enforced by ``connection_limits``)."""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelpilot.errors import ModelPilotError, PayloadTooLarge
from modelpilot.server.rest.body import sent_request_id
from modelpilot.server.rest.errors import error_response
from modelpilot.server.rest.handlers import inference_route
from modelpilot.serving.engine import InferenceEngine


class HeadersTooLarge(PayloadTooLarge):
    """The request's line and headers are over the REST port's limit (gRPC's HTTP/2 bounds
    its header lists itself)."""

    http_status = 431


def too_large(size: int | None, limit: int) -> PayloadTooLarge:
    got = f"{size} bytes, " if size is not None else ""
    return PayloadTooLarge(
        f"the request body is {got}over the limit of {limit} bytes; send fewer "
        "rows per request or raise MODELPILOT_MAX_REQUEST_BYTES"
    )


async def refused_too_large(
    engine: InferenceEngine | None, path: str, error: PayloadTooLarge, started: float
) -> ModelPilotError:
    """What a ``POST`` to ``path`` whose body is over the limit (``error``) is answered with.

    A request for a prediction is counted as the engine counts one whose body it could not
    decode (status 413, under its model's label), and a model or version that does not exist
    is what the client hears of instead, as it would be with a body it could read. A request
    to any other endpoint is no model's: ``error`` as it is."""
    route = inference_route(path) if engine is not None else None
    if engine is None or route is None:
        return error
    _, model, version = route
    return await engine.refused(model, version, "rest", error, time.perf_counter() - started)


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over ``max_bytes``, declared or streamed; those of
    predictions are counted by ``engine``'s observers, if one is given."""

    def __init__(self, app: ASGIApp, max_bytes: int, engine: InferenceEngine | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.engine = engine

    async def _error(self, scope: Scope, size: int | None, started: float) -> ModelPilotError:
        error = too_large(size, self.max_bytes)
        if scope["method"] != "POST":
            return error
        return await refused_too_large(self.engine, scope["path"], error, started)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    sent_id = sent_request_id(Headers(scope=scope))
                    error = await self._error(scope, declared, started)
                    await error_response(error, sent_id)(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise await self._error(scope, None, started)
            return message

        await self.app(scope, limited, send)
