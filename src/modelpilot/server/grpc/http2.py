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
hold is bounded, and a server past its number of connections refuses new ones at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from modelpilot.config import Settings
from modelpilot.server.grpc.frames import (
    ACK,
    CANCEL,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME,
    DEFAULT_WINDOW,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    ProtocolError,
    frame,
    goaway,
    setting,
    u32,
    unpad,
)
from modelpilot.server.grpc.headers import HEADER_LIST_LIMIT, HeaderDecoder
from modelpilot.server.grpc.stream import Stream

logger = logging.getLogger(__name__)

# What this server grants: big windows, so that a client never waits on them for requests up
# to a few MB; larger frames than the default 16 KB, so that big tensors take fewer frames.
STREAM_WINDOW = 4 * 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
FRAME_LIMIT = 1024 * 1024
MAX_STREAMS = 1000


Handler = Callable[["Http2Connection", Stream], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Http2Limits:
    """How long a client may take over each part of its work, and how many connections a
    server keeps; the ``MODELPILOT_*`` settings named in each field's comment."""

    header_timeout: float  # HEADER_TIMEOUT_SECONDS: for the connection preface
    body_timeout: float  # BODY_TIMEOUT_SECONDS: for a request's body, from its headers
    idle_timeout: float  # GRPC_IDLE_TIMEOUT_SECONDS: for a connection with no call open
    send_timeout: float  # SEND_TIMEOUT_SECONDS: for an answer the client does not take
    max_connections: int  # MAX_CONNECTIONS: of one server; the server counts them

    @classmethod
    def from_settings(cls, settings: Settings) -> Http2Limits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            idle_timeout=settings.grpc_idle_timeout_seconds,
            send_timeout=settings.send_timeout_seconds,
            max_connections=settings.max_connections,
        )


DEFAULT_LIMITS = Http2Limits.from_settings(Settings.model_construct())
"""The limits of the settings' defaults."""


class Http2Connection(asyncio.Protocol):
    """One client connection: frames in, requests handed to ``handler``, responses out.

    ``handler`` runs as a task once a request is complete, and must answer with
    :meth:`respond`. It runs at once, with ``stream.overflow`` set, when a body outgrows
    ``max_body``, or when the bodies still arriving on the connection outgrow four times
    that (a client cannot make the server hold more than that for it). New calls are
    refused (RST_STREAM REFUSED_STREAM) while as much in answers waits for the client's
    flow-control window.

    ``limits`` bound the time each part of the work may take (see :meth:`_check`). With
    ``over_limit`` the server has as many connections as it may keep: this one is refused
    at once, with GOAWAY.
    """

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        on_close: Callable[[Http2Connection], None],
        answers_at_once: Callable[[Stream], bool] = lambda stream: False,
        *,
        limits: Http2Limits = DEFAULT_LIMITS,
        over_limit: bool = False,
    ) -> None:
        self.handler = handler
        self.answers_at_once = answers_at_once
        """Whether ``handler`` can answer a request from its headers alone (a method it does
        not have): it is then started at once, not once a body that may never end has come."""
        self.max_body = max_body
        self.on_close = on_close
        self.limits = limits
        self.over_limit = over_limit
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

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        if self.over_limit:
            # A server's first frame must be its SETTINGS, even one that only says goodbye.
            limit = self.limits.max_connections
            reason = (
                f"the server holds its limit of {limit} connections (MODELPILOT_MAX_CONNECTIONS); "
                "try again shortly, or another server"
            )
            self.transport.write(frame(SETTINGS, 0, 0))
            self._close(NO_ERROR, reason)
            return
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

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does, and
        # give up on it if it does not within the send timeout.
        if self.transport is not None:
            self.transport.pause_reading()
            self._write_paused_since = self._loop.time()
            self._watch(self._write_paused_since + self.limits.send_timeout)

    def resume_writing(self) -> None:
        self._write_paused_since = None
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        try:
            self._buffer = buffer[self._frames(buffer) :]
        except ProtocolError as exc:
            logger.debug("HTTP/2 connection error %d: %s", exc.code, exc)
            self._close(exc.code, str(exc))

    # -- responding -------------------------------------------------------------------------

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

    def _close_if_drained(self) -> None:
        if self._draining and not self.streams and self.transport is not None:
            self.transport.close()

    def _unblock(self) -> bytes:
        out = []
        for stream in list(self._blocked.values()):
            if self._peer_window <= 0:
                break
            if stream.send_window > 0:
                out.append(self._take(stream))
        return b"".join(out)

    # -- receiving --------------------------------------------------------------------------

    def _frames(self, buffer: bytes) -> int:
        """Handle every whole frame in ``buffer``; the number of bytes used."""
        pos = 0
        if not self._preface:
            if len(buffer) < len(PREFACE):
                if not PREFACE.startswith(buffer):
                    raise ProtocolError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return 0
            if not buffer.startswith(PREFACE):
                raise ProtocolError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface = True
            pos = len(PREFACE)
        end = len(buffer)
        out: list[bytes] = []
        while end - pos >= 9:
            length = int.from_bytes(buffer[pos : pos + 3], "big")
            if length > FRAME_LIMIT:
                raise ProtocolError(FRAME_SIZE_ERROR, f"a frame of {length} bytes")
            if end - pos - 9 < length:
                break
            kind = buffer[pos + 3]
            flags = buffer[pos + 4]
            stream_id = u32.unpack_from(buffer, pos + 5)[0] & 0x7FFFFFFF
            payload = buffer[pos + 9 : pos + 9 + length]
            pos += 9 + length
            if self._continued is not None and kind != CONTINUATION:
                raise ProtocolError(PROTOCOL_ERROR, "a header block was cut off")
            if kind == DATA:
                self._data(stream_id, flags, payload, out)
            elif kind == HEADERS:
                self._headers(stream_id, flags, payload)
            elif kind == CONTINUATION:
                self._continuation(stream_id, flags, payload)
            elif kind == SETTINGS:
                out.append(self._settings(stream_id, flags, payload))
            elif kind == WINDOW_UPDATE:
                out.append(self._window_update(stream_id, payload))
            elif kind == PING:
                if stream_id or length != 8:
                    raise ProtocolError(PROTOCOL_ERROR, "a malformed PING")
                if not flags & ACK:
                    out.append(frame(PING, ACK, 0, payload))
            elif kind == RST_STREAM:
                self._reset(stream_id)
            elif kind == GOAWAY:
                self._draining = True
            elif kind == PUSH_PROMISE:
                raise ProtocolError(PROTOCOL_ERROR, "clients cannot push")
            # PRIORITY and unknown frame types are ignored, as the protocol asks.
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        self._close_if_drained()
        return pos

    def _data(self, stream_id: int, flags: int, payload: bytes, out: list[bytes]) -> None:
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise ProtocolError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._recv_unacked += size
        if self._recv_unacked >= CONNECTION_WINDOW // 2:
            out.append(frame(WINDOW_UPDATE, 0, 0, u32.pack(self._recv_unacked)))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.ended:
            if stream_id == 0 or stream_id > self._last_id:
                raise ProtocolError(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            return  # a stream already answered or reset: its data only counts for the window
        if flags & PADDED:
            payload = unpad(payload)
        stream.recv_unacked += size
        if stream.recv_unacked > STREAM_WINDOW:
            raise ProtocolError(FLOW_CONTROL_ERROR, f"DATA beyond the window of {stream_id}")
        if stream.overflow is None and stream.task is None:
            stream.size += len(payload)
            self._held += len(payload)
            if stream.size > self.max_body:
                stream.overflow = "request"
            elif self._held > 4 * self.max_body:
                stream.overflow = "connection"
            if stream.overflow is not None:
                stream.chunks.clear()
                self._start(stream)
            elif payload:
                stream.chunks.append(payload)
        if flags & END_STREAM:
            stream.ended = True
            if stream.task is None:
                self._start(stream)
        elif stream.recv_unacked >= STREAM_WINDOW // 2:
            out.append(frame(WINDOW_UPDATE, 0, stream_id, u32.pack(stream.recv_unacked)))
            stream.recv_unacked = 0

    def _headers(self, stream_id: int, flags: int, payload: bytes) -> None:
        if flags & PADDED:
            payload = unpad(payload)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        if not flags & END_HEADERS:
            self._continued = (stream_id, flags, [payload])
            return
        self._header_block(stream_id, flags, payload)

    def _continuation(self, stream_id: int, flags: int, payload: bytes) -> None:
        if self._continued is None or self._continued[0] != stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        self._continued[2].append(payload)
        if sum(len(p) for p in self._continued[2]) > HEADER_LIST_LIMIT * 2:
            raise ProtocolError(PROTOCOL_ERROR, "a header block larger than the limit")
        if flags & END_HEADERS:
            _, first_flags, fragments = self._continued
            self._continued = None
            self._header_block(stream_id, first_flags, b"".join(fragments))

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        headers = self._headers_in.decode(block)  # always, in order (the HPACK table)
        stream = self.streams.get(stream_id)
        if stream is not None:
            # Trailers of a request: they end it; their contents mean nothing to unary calls.
            if not flags & END_STREAM:
                raise ProtocolError(PROTOCOL_ERROR, f"trailers without END_STREAM on {stream_id}")
            if not stream.ended:
                stream.ended = True
                if stream.task is None:
                    self._start(stream)
            return
        if stream_id % 2 == 0 or stream_id <= self._last_id:
            raise ProtocolError(PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        self._last_id = stream_id
        if self._draining or len(self.streams) >= MAX_STREAMS or self._queued >= self._budget:
            # (The last: the client leaves answers untaken; it gets no more until it takes them.)
            if self.transport is not None:
                self.transport.write(frame(RST_STREAM, 0, stream_id, u32.pack(REFUSED_STREAM)))
            return
        stream = Stream(stream_id, headers, self._peer_stream_window)
        self.streams[stream_id] = stream
        if flags & END_STREAM:
            stream.ended = True
            self._start(stream)
        elif self.answers_at_once(stream):
            self._start(stream)
        else:
            stream.deadline = self._loop.time() + self.limits.body_timeout
            self._watch(stream.deadline)

    def _settings(self, stream_id: int, flags: int, payload: bytes) -> bytes:
        if stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            return b""
        if len(payload) % 6:
            raise ProtocolError(FRAME_SIZE_ERROR, "a SETTINGS frame of a wrong size")
        for offset in range(0, len(payload), 6):
            key, value = setting.unpack_from(payload, offset)
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(FLOW_CONTROL_ERROR, "an initial window over 2^31-1")
                delta = value - self._peer_stream_window
                self._peer_stream_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == MAX_FRAME_SIZE:
                if not DEFAULT_FRAME <= value <= 2**24 - 1:
                    raise ProtocolError(PROTOCOL_ERROR, f"a maximum frame size of {value}")
                self._peer_frame = value
            # The other settings bind a side that pushes, or an encoder with a dynamic table;
            # this one does neither.
        return frame(SETTINGS, ACK, 0) + self._unblock()

    def _window_update(self, stream_id: int, payload: bytes) -> bytes:
        if len(payload) != 4:
            raise ProtocolError(FRAME_SIZE_ERROR, "a WINDOW_UPDATE of a wrong size")
        increment = u32.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ProtocolError(PROTOCOL_ERROR, "a WINDOW_UPDATE of zero")
            self._peer_window += increment
            if self._peer_window > MAX_WINDOW:
                raise ProtocolError(FLOW_CONTROL_ERROR, "the connection window overflowed")
            return self._unblock()
        stream = self.streams.get(stream_id)
        if stream is None:
            return b""
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            raise ProtocolError(FLOW_CONTROL_ERROR, f"the window of {stream_id} overflowed")
        if stream.id in self._blocked and self._peer_window > 0:
            return self._take(stream)
        return b""

    def _reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if stream.task is not None:
            stream.task.cancel()
        else:
            self._held -= stream.size
        self._forget(stream)

    def _start(self, stream: Stream) -> None:
        self._held -= stream.size
        stream.deadline = math.inf  # the call's own deadline (grpc-timeout) is the handler's
        task = self._loop.create_task(self.handler(self, stream))
        stream.task = task
        task.add_done_callback(_log_failure)

    # -- timeouts ---------------------------------------------------------------------------

    def _watch(self, when: float) -> None:
        """Have :meth:`_check` run at ``when`` (event loop time), or earlier."""
        timer = self._timer
        if timer is None or when < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        """End what has overrun its time, then wait for the next deadline.

        The connection preface must come within the header timeout of the connection; a
        request's body within the body timeout of its headers, and an answer that flow
        control holds back must be taken within the send timeout (else the stream is reset
        with CANCEL, and what it held is freed); a connection with no stream open for the
        idle timeout is closed with GOAWAY, as is one whose client reads nothing for the
        send timeout. Deadlines are noted as work comes and goes; only this one timer runs
        for them, at the earliest (and again at the next).
        """
        self._timer = None
        transport = self.transport
        if transport is None:
            return
        now = self._loop.time()
        limits = self.limits
        if not self._preface:
            end = self._started + limits.header_timeout
            if now < end:
                self._watch(end)
            else:
                self._close(
                    NO_ERROR,
                    f"no HTTP/2 connection preface within {limits.header_timeout:g} s "
                    "(MODELPILOT_HEADER_TIMEOUT_SECONDS)",
                )
            return
        paused = self._write_paused_since
        if paused is not None and now >= paused + limits.send_timeout:
            logger.debug("closing an HTTP/2 connection whose client reads nothing")
            transport.abort()  # closing would wait for the client to read what is written
            return
        out = []
        upcoming = math.inf if paused is None else paused + limits.send_timeout
        for stream in list(self.streams.values()):
            if stream.deadline > now:
                upcoming = min(upcoming, stream.deadline)
                continue
            if stream.task is None:
                self._held -= stream.size
                logger.debug("reset stream %d: its body took too long", stream.id)
            elif stream.id in self._blocked:
                logger.debug("reset stream %d: its answer was not taken", stream.id)
            else:
                stream.deadline = math.inf  # running: the handler's
                continue
            self._forget(stream)
            out.append(frame(RST_STREAM, 0, stream.id, u32.pack(CANCEL)))
        if out:
            transport.write(b"".join(out))
        if not self.streams:
            end = self._quiet_since + limits.idle_timeout
            if now >= end:
                self.goaway(
                    f"no call within {limits.idle_timeout:g} s "
                    "(MODELPILOT_GRPC_IDLE_TIMEOUT_SECONDS)"
                )
                return
            upcoming = min(upcoming, end)
        if upcoming < math.inf:
            self._watch(upcoming)

    def _close(self, code: int, message: str) -> None:
        if self.transport is None:
            return
        debug = message.encode("utf-8", "replace")[:256]
        self.transport.write(frame(GOAWAY, 0, 0, goaway.pack(self._last_id, code) + debug))
        self.transport.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a stream's handler failed", exc_info=task.exception())
