"""One request and its response on an HTTP/2 connection, as ``http2`` keeps them."""

from __future__ import annotations

import asyncio


class Stream:
    """One request and its response on a connection."""

    __slots__ = (
        "chunks",
        "ended",
        "headers",
        "id",
        "overflow",
        "pending",
        "recv_unacked",
        "send_window",
        "size",
        "task",
        "trailers",
    )

    def __init__(self, stream_id: int, headers: list[tuple[str, str]], send_window: int) -> None:
        self.id = stream_id
        self.headers = headers
        self.chunks: list[bytes] = []
        self.size = 0
        # Why the body was refused before it ended: "request" (over the limit itself) or
        # "connection" (the connection holds too much unfinished work); later chunks are
        # dropped as they come.
        self.overflow: str | None = None
        # The request is complete (END_STREAM seen).
        self.ended = False
        self.send_window = send_window
        self.recv_unacked = 0
        # Response bytes that flow control holds back, and the trailers that follow them.
        self.pending = b""
        self.trailers: bytes | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def body(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None
