"""``HEAD`` answered as ``GET`` is, without the body (RFC 9110, 9.3.2).

FastAPI routes declared with ``get`` answer ``HEAD`` with 405, unlike Starlette's; load
balancers and uptime monitors probe health with ``HEAD``. One middleware serves it for every
``GET`` route, rather than each route declaring it (which would list every path twice in the
OpenAPI document).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Pure ASGI middleware: route ``HEAD`` requests as ``GET``, and send the answer's status
    and headers (its Content-Length too, the size a ``GET`` would get) with no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
