"""One request and its response on an HTTP/2 connection, as ``http2`` keeps them."""

from __future__ import annotations

import asyncio
import math


class Stream:
    """One request and its response on a connection."""

    __slots__ = (
        "chunks",
        "deadline",
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
        self.pending: bytes | memoryview = b""
        self.trailers: bytes | None = None
        self.task: asyncio.Task[None] | None = None
        # The event loop's time by which the body must have come (while it arrives), or the
        # answer been taken by the client (while flow control holds it back).
        self.deadline = math.inf

    @property
    def body(self) -> bytes:
        """The request body, handed over once: the stream lets go of it, so that it is freed
        when the handler has decoded it, not when the answer is out (which a client that
        keeps its flow-control window shut can put off for long)."""
        chunks, self.chunks = self.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None
