"""HTTP/2 for unary calls: the part of RFC 9113 a gRPC server needs, as an asyncio protocol.

grpc.aio spends over 100 us of Python per call on its completion-queue machinery, more than
the model does. A unary gRPC call is a small, regular exchange (request headers and one DATA
payload in; response headers, one DATA payload and trailers out), so the frames are parsed
here directly, and each response goes out in one write. What it takes from HTTP/2: frames and
their flags (padding, priority, CONTINUATION), SETTINGS, PING, GOAWAY, RST_STREAM, flow
control both ways, HPACK (the ``hpack`` package decodes; responses are encoded without the
dynamic table), and a graceful drain. It serves no pushes and no streaming responses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, cast

from modelpilot.server.grpc.frames import (
    ACK,
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


class Http2Connection(asyncio.Protocol):
    """One client connection: frames in, requests handed to ``handler``, responses out.

    ``handler`` runs as a task once a request is complete, and must answer with
    :meth:`respond`. It runs at once, with ``stream.overflow`` set, when a body outgrows
    ``max_body``, or when the bodies still arriving on the connection outgrow four times
    that (a client cannot make the server hold more than that for it).
    """

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        on_close: Callable[[Http2Connection], None],
        answers_at_once: Callable[[Stream], bool] = lambda stream: False,
    ) -> None:
        self.handler = handler
        self.answers_at_once = answers_at_once
        """Whether ``handler`` can answer a request from its headers alone (a method it does
        not have): it is then started at once, not once a body that may never end has come."""
        self.max_body = max_body
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.closed = asyncio.get_running_loop().create_future()
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
        self._draining = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
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
        # The client does not read its answers: stop reading its requests until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
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
        if body is None and trailers is None:
            out = self._header_frames(stream.id, headers, END_STREAM) + self._finish(stream)
        else:
            out = self._header_frames(stream.id, headers, 0)
            stream.pending = body or b""
            stream.trailers = trailers
            out += self._take(stream)
        self.transport.write(out)
        self._close_if_drained()

    def goaway(self) -> None:
        """Start draining: no new streams; the connection closes when its streams are done."""
        if self._draining or self.transport is None:
            return
        self._draining = True
        self.transport.write(frame(GOAWAY, 0, 0, goaway.pack(self._last_id, NO_ERROR)))
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
        WINDOW_UPDATE.
        """
        out = []
        pending = stream.pending
        while pending:
            room = min(stream.send_window, self._peer_window, self._peer_frame)
            if room <= 0:
                break
            chunk, pending = pending[:room], pending[room:]
            stream.send_window -= len(chunk)
            self._peer_window -= len(chunk)
            out.append(frame(DATA, 0, stream.id, chunk))
        stream.pending = pending
        if pending:
            self._blocked[stream.id] = stream
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
        self.streams.pop(stream.id, None)
        self._blocked.pop(stream.id, None)
        return b"" if stream.ended else frame(RST_STREAM, 0, stream.id, u32.pack(NO_ERROR))

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
        if self._draining or len(self.streams) >= MAX_STREAMS:
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
        stream = self.streams.pop(stream_id, None)
        self._blocked.pop(stream_id, None)
        if stream is None:
            return
        if stream.task is not None:
            stream.task.cancel()
        else:
            self._held -= stream.size

    def _start(self, stream: Stream) -> None:
        self._held -= stream.size
        task = asyncio.get_running_loop().create_task(self.handler(self, stream))
        stream.task = task
        task.add_done_callback(_log_failure)

    def _close(self, code: int, message: str) -> None:
        if self.transport is None:
            return
        debug = message.encode("utf-8", "replace")[:256]
        self.transport.write(frame(GOAWAY, 0, 0, goaway.pack(self._last_id, code) + debug))
        self.transport.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a stream's handler failed", exc_info=task.exception())
