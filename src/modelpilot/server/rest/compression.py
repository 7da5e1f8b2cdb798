"""Gzip for the answers browsers and scripts poll: the dashboard's and the management API's."""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

COMPRESSED_PATHS = ("/api/", "/dashboard")
"""Where answers are compressed for a client that accepts gzip. Not the inference paths: their
answers are small or binary tensors (whose header length a client reads off the raw body),
and compressing them would cost every request on the hot path. ``/metrics`` compresses its
own."""

MINIMUM_BYTES = 1024
"""Smaller answers go as they are: gzip saves nothing worth its time there."""

LEVEL = 5
"""zlib's level. Drift details of 500 features (436 KB of JSON) went to 45 KB in 23 ms; level 9
(Starlette's default) took 60 ms for 43 KB, and the dashboard's answer is made every 2 s for
each open page. (Recent Starlette compresses a large answer in a thread, off the event loop.)"""


class ApiCompression:
    """Pure ASGI middleware: gzip the answers under ``COMPRESSED_PATHS`` of at least
    ``MINIMUM_BYTES`` to clients that send ``Accept-Encoding: gzip``; pass the rest through."""

    def __init__(self, app: ASGIApp, minimum_size: int = MINIMUM_BYTES, level: int = LEVEL) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=level)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(COMPRESSED_PATHS):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
