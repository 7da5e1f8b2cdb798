"""A connection past the server's limit: its calls are answered with an error, then it closes.

GOAWAY alone does not refuse a gRPC client: a call that a server has not seen is one to send
again, so grpcio reconnects, is sent away again, and so on until its deadline. A call that is
answered UNAVAILABLE fails at once instead, as REST's 503 does. So the refused connection
takes the client's preface and the header block of each call it opens, answers each one with
the server's refusal (a trailers-only answer) and then sends GOAWAY and closes. It keeps
nothing of what it reads but the header of the frame at hand: payloads are skipped, not
buffered, and the client may send no more than HTTP/2's default window of DATA anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from modelpilot.server.grpc.frames import (
    ACK,
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    frame,
    goaway,
    u32,
)

REFUSAL_WAIT = 1.0
"""Seconds a refused connection has to open the call it is told the refusal in; a client
connects when it has a call to make, and sends it with its preface."""
LINGER = 1.0
"""Seconds a refused connection is kept open, reading and dropping what still comes, once
it has been told the refusal: a socket closed with unread data resets the connection, which
can destroy the answer before the client reads it."""


class RefusedConnection(asyncio.Protocol):
    """One connection the server will not keep: every call it opens before it is closed is
    answered with ``answer`` (a trailers-only header block, HPACK encoded); then GOAWAY with
    ``reason``.

    It closes ``wait`` seconds after it was made if it opens no call by then (at once for
    ``wait`` 0, as when the server already has enough refusals under way).
    """

    def __init__(
        self,
        answer: bytes,
        reason: str,
        on_close: Callable[[RefusedConnection], None],
        wait: float = REFUSAL_WAIT,
    ) -> None:
        self.answer = answer
        self.reason = reason
        self.on_close = on_close
        self.wait = wait
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._preface = False
        self._head = b""  # the start of the connection preface, or of a frame's header
        self._skip = 0  # bytes of the current frame's payload still to drop
        self._block_ends_stream = False  # of the header block that CONTINUATIONs go on with
        self._last_id = 0  # of the last call answered
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        # A server's first frame must be its SETTINGS, even one that only says goodbye.
        self.transport.write(frame(SETTINGS, 0, 0))
        if self.wait <= 0:
            self._goodbye()
        else:
            self._timer = self._loop.call_later(self.wait, self._goodbye)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # what the client still sends once told; dropped
        out: list[bytes] = []
        view = memoryview(data)
        while view:
            if self._skip:
                skipped = min(self._skip, len(view))
                self._skip -= skipped
                view = view[skipped:]
                continue
            wanted = 9 if self._preface else len(PREFACE)
            taken = wanted - len(self._head)
            self._head += bytes(view[:taken])
            view = view[taken:]
            if len(self._head) < wanted:
                break
            head, self._head = self._head, b""
            if not self._preface:
                if head != PREFACE:
                    self._goodbye()
                    return
                self._preface = True
                continue
            self._skip = int.from_bytes(head[:3], "big")
            out.append(self._frame(head[3], head[4], u32.unpack_from(head, 5)[0] & 0x7FFFFFFF))
        if self.transport is not None:
            self.transport.write(b"".join(out))
        if self._last_id:
            self._goodbye()

    def _frame(self, kind: int, flags: int, stream_id: int) -> bytes:
        """What to send for a frame of the client's (its payload is not needed): a SETTINGS
        acknowledged, and each call, once its header block is whole, refused."""
        if kind == SETTINGS and not flags & ACK:
            return frame(SETTINGS, ACK, 0)
        if kind == HEADERS:
            self._block_ends_stream = bool(flags & END_STREAM)
        if kind not in (HEADERS, CONTINUATION) or not flags & END_HEADERS or not stream_id:
            return b""
        self._last_id = max(self._last_id, stream_id)
        out = frame(HEADERS, END_STREAM | END_HEADERS, stream_id, self.answer)
        if not self._block_ends_stream:
            # Answered before the request ended: the client may stop sending it.
            out += frame(RST_STREAM, 0, stream_id, u32.pack(NO_ERROR))
        return out

    def _goodbye(self) -> None:
        """GOAWAY (the calls answered were processed: no client sends them again), then no
        more writing; the connection closes when the client closes its side, or ``LINGER``
        seconds later."""
        if self._done or self.transport is None:
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
        debug = self.reason.encode("utf-8", "replace")[:256]
        self.transport.write(frame(GOAWAY, 0, 0, goaway.pack(self._last_id, NO_ERROR) + debug))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._timer = self._loop.call_later(LINGER, self.abort)
        else:
            self.transport.close()

    def eof_received(self) -> bool:
        self._goodbye()
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport = None
        self.on_close(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
