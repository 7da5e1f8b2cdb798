"""HTTP/2 for unary calls: the part of RFC 9113 a gRPC server needs, as an asyncio protocol.

grpc.aio spends over 100 us of Python per call on its completion-queue machinery, more than
the model does. A unary gRPC call is a small, regular exchange (request headers and one DATA
payload in; response headers, one DATA payload and trailers out), so the frames are parsed
here directly, and each response goes out in one write. What it takes from HTTP/2: frames and
their flags (padding, priority, CONTINUATION), SETTINGS, PING, GOAWAY, RST_STREAM, flow
control both ways, HPACK (the ``hpack`` package decodes; responses are encoded without the
dynamic table), and a graceful drain. It serves no pushes and no streaming responses.

A client gets a bounded share of the server's time and memory: the preface, each request's
body and each answer held back by flow control must come or go within their timeouts, a
connection with no call open is closed once idle, what one connection may make the server
hold is bounded, and a server past its number of connections refuses new ones at once
(:mod:`~.http2_refusal`).

:class:`Http2Connection` is here, with the connection's life and its answers (flow control
of what goes out included); it reads frames as a :class:`~.http2_receiver.FrameReceiver`,
and keeps its deadlines as a :class:`~.http2_limits.ConnectionDeadlines`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, cast

from modelpilot.server.grpc.frames import (
    CONTINUATION,
    DATA,
    DEFAULT_FRAME,
    DEFAULT_WINDOW,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    NO_ERROR,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
    goaway,
    setting,
    u32,
)
from modelpilot.server.grpc.headers import HEADER_LIST_LIMIT, HeaderDecoder
from modelpilot.server.grpc.http2_limits import DEFAULT_LIMITS, ConnectionDeadlines, Http2Limits
from modelpilot.server.grpc.http2_receiver import (
    CONNECTION_WINDOW,
    FRAME_LIMIT,
    MAX_STREAMS,
    STREAM_WINDOW,
    FrameReceiver,
)
from modelpilot.server.grpc.stream import Stream

__all__ = [
    "CONNECTION_WINDOW",
    "DEFAULT_LIMITS",
    "FRAME_LIMIT",
    "MAX_STREAMS",
    "STREAM_WINDOW",
    "Handler",
    "Http2Connection",
    "Http2Limits",
]

logger = logging.getLogger(__name__)

Handler = Callable[["Http2Connection", Stream], Coroutine[Any, Any, None]]


class Http2Connection(FrameReceiver, ConnectionDeadlines, asyncio.Protocol):
    """One client connection: frames in, requests handed to ``handler``, responses out.

    ``handler`` runs as a task once a request is complete, and must answer with
    :meth:`respond`. It runs at once, with ``stream.overflow`` set, when a body outgrows
    ``max_body``, or when the bodies still arriving on the connection outgrow four times
    that (a client cannot make the server hold more than that for it). New calls are
    refused (RST_STREAM REFUSED_STREAM) while as much in answers waits for the client's
    flow-control window.

    ``limits`` bound the time each part of the work may take (see :meth:`_check`). (A
    connection past the server's limit is a :class:`~.http2_refusal.RefusedConnection`.)
    """

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        on_close: Callable[[Http2Connection], None],
        answers_at_once: Callable[[Stream], bool] = lambda stream: False,
        *,
        limits: Http2Limits = DEFAULT_LIMITS,
    ) -> None:
        self.handler = handler
        self.answers_at_once = answers_at_once
        """Whether ``handler`` can answer a request from its headers alone (a method it does
        not have): it is then started at once, not once a body that may never end has come."""
        self.max_body = max_body
        self.on_close = on_close
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()
        self._buffer = b""
        self._preface = False
        self._headers_in = HeaderDecoder()
        self._last_id = 0
        # A header block split over CONTINUATION frames: (stream id, flags, fragments).
        self._continued: tuple[int, int, list[bytes]] | None = None
        self._peer_window = DEFAULT_WINDOW  # connection-level, for what this side sends
        self._peer_stream_window = DEFAULT_WINDOW
        self._peer_frame = DEFAULT_FRAME
        self._recv_window = CONNECTION_WINDOW
        self._recv_unacked = 0
        self._blocked: dict[int, Stream] = {}
        self._held = 0  # bytes of request bodies still arriving
        self._queued = 0  # bytes of answers in _blocked, waiting for the client's window
        self._budget = 4 * max_body  # of either, for one connection
        self._draining = False
        # The one timer of the connection, for the earliest deadline of its work (_check).
        self._timer: asyncio.TimerHandle | None = None
        self._started = self._loop.time()
        self._quiet_since = self._started  # when the last call ended (while none is open)
        self._write_paused_since: float | None = None

    # -- the connection's life --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self._watch(self._started + self.limits.header_timeout)
        settings = b"".join(
            setting.pack(key, value)
            for key, value in (
                (MAX_CONCURRENT_STREAMS, MAX_STREAMS),
                (INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (MAX_FRAME_SIZE, FRAME_LIMIT),
                (MAX_HEADER_LIST_SIZE, HEADER_LIST_LIMIT),
                (ENABLE_PUSH, 0),
            )
        )
        self.transport.write(
            frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, u32.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self._blocked.clear()
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_close(self)

    def goaway(self, reason: str = "") -> None:
        """Start draining: no new streams; the connection closes when its streams are done."""
        if self._draining or self.transport is None:
            return
        self._draining = True
        debug = reason.encode("utf-8", "replace")[:256]
        self.transport.write(frame(GOAWAY, 0, 0, goaway.pack(self._last_id, NO_ERROR) + debug))
        self._close_if_drained()

    def cut_off(self, trailers: bytes) -> int:
        """Cancel every call still being answered and end it with the trailers-only answer
        ``trailers``, then close once they are written; how many were cut off."""
        cut = 0
        for stream in list(self.streams.values()):
            if stream.task is not None and not stream.task.done():
                stream.task.cancel()
                self.respond(stream, trailers, None, None)
                cut += 1
        if self.transport is not None:
            self.transport.close()  # after what is written (abort would drop the answers)
        return cut

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self, code: int, message: str) -> None:
        if self.transport is None:
            return
        debug = message.encode("utf-8", "replace")[:256]
        self.transport.write(frame(GOAWAY, 0, 0, goaway.pack(self._last_id, code) + debug))
        self.transport.close()

    def _close_if_drained(self) -> None:
        if self._draining and not self.streams and self.transport is not None:
            self.transport.close()

    # -- calls: requests to the handler, answers out ----------------------------------------

    def _start(self, stream: Stream) -> None:
        self._held -= stream.size
        stream.deadline = math.inf  # the call's own deadline (grpc-timeout) is the handler's
        task = self._loop.create_task(self.handler(self, stream))
        stream.task = task
        task.add_done_callback(_log_failure)

    def respond(
        self, stream: Stream, headers: bytes, body: bytes | None, trailers: bytes | None
    ) -> None:
        """Send a response: a header block, then the body and trailers if any.

        Without a body and trailers the header block ends the stream (gRPC's trailers-only
        answer). The blocks are HPACK encoded already; see :func:`literal`.
        """
        if self.transport is None or self.streams.get(stream.id) is not stream:
            return  # the client reset the stream or went away
        stream.chunks = []  # the request is answered; its body is no longer needed
        if body is None and trailers is None:
            out = self._header_frames(stream.id, headers, END_STREAM) + self._finish(stream)
        else:
            out = self._header_frames(stream.id, headers, 0)
            stream.pending = body or b""
            stream.trailers = trailers
            out += self._take(stream)
        self.transport.write(out)
        self._close_if_drained()

    def _take(self, stream: Stream) -> bytes:
        """The DATA frames and trailers of ``stream`` that the flow-control windows allow.

        Once everything is out, the stream is finished; else it waits in ``_blocked`` for a
        WINDOW_UPDATE, for up to the send timeout from when it first had to.
        """
        out = []
        was_blocked = self._blocked.pop(stream.id, None) is not None
        if was_blocked:
            self._queued -= len(stream.pending)
        pending = stream.pending
        if len(pending) > self._peer_frame:
            # Slicing bytes would copy what is left for every frame: quadratic in the size of
            # an answer of many frames.
            pending = memoryview(pending)
        while pending:
            room = min(stream.send_window, self._peer_window, self._peer_frame)
            if room <= 0:
                break
            chunk, pending = pending[:room], pending[room:]
            stream.send_window -= len(chunk)
            self._peer_window -= len(chunk)
            # (frame() joins a view as it joins bytes; bytes(chunk) would copy it once more.)
            out.append(frame(DATA, 0, stream.id, chunk))  # type: ignore[arg-type]
        stream.pending = pending
        if pending:
            self._blocked[stream.id] = stream
            self._queued += len(pending)
            if not was_blocked:
                stream.deadline = self._loop.time() + self.limits.send_timeout
                self._watch(stream.deadline)
            return b"".join(out)
        if stream.trailers is not None:
            out.append(self._header_frames(stream.id, stream.trailers, END_STREAM))
            stream.trailers = None
        out.append(self._finish(stream))
        return b"".join(out)

    def _header_frames(self, stream_id: int, block: bytes, flags: int) -> bytes:
        size = self._peer_frame
        if len(block) <= size:
            return frame(HEADERS, flags | END_HEADERS, stream_id, block)
        parts = [block[i : i + size] for i in range(0, len(block), size)]
        out = [frame(HEADERS, flags, stream_id, parts[0])]
        out += [frame(CONTINUATION, 0, stream_id, part) for part in parts[1:-1]]
        out.append(frame(CONTINUATION, END_HEADERS, stream_id, parts[-1]))
        return b"".join(out)

    def _finish(self, stream: Stream) -> bytes:
        """The response is out: forget the stream; a RST_STREAM if the request is not over.

        (An answer before the whole request, as to a body over the limit, asks the client to
        stop sending with RST_STREAM NO_ERROR.)
        """
        self._forget(stream)
        return b"" if stream.ended else frame(RST_STREAM, 0, stream.id, u32.pack(NO_ERROR))

    def _forget(self, stream: Stream) -> None:
        """Drop ``stream`` and what it holds; a connection left without one starts idling."""
        self.streams.pop(stream.id, None)
        if self._blocked.pop(stream.id, None) is not None:
            self._queued -= len(stream.pending)
        stream.pending = b""
        stream.chunks = []
        if not self.streams:
            self._quiet_since = self._loop.time()
            self._watch(self._quiet_since + self.limits.idle_timeout)

    def _unblock(self) -> bytes:
        out = []
        for stream in list(self._blocked.values()):
            if self._peer_window <= 0:
                break
            if stream.send_window > 0:
                out.append(self._take(stream))
        return b"".join(out)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a stream's handler failed", exc_info=task.exception())
