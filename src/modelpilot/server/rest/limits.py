"""Request size limit, enforced before and while the body is read (413 past it)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelpilot.errors import PayloadTooLarge
from modelpilot.server.rest.body import sent_request_id
from modelpilot.server.rest.errors import error_response


def too_large(size: int | None, limit: int) -> PayloadTooLarge:
    got = f"{size} bytes, " if size is not None else ""
    return PayloadTooLarge(
        f"the request body is {got}over the limit of {limit} bytes; send fewer "
        "rows per request or raise MODELPILOT_MAX_REQUEST_BYTES"
    )


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self, size: int | None) -> PayloadTooLarge:
        return too_large(size, self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    sent_id = sent_request_id(Headers(scope=scope))
                    await error_response(self._error(declared), sent_id)(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._error(None)
            return message

        await self.app(scope, limited, send)
