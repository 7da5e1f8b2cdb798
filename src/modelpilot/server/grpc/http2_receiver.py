"""HTTP/2 frames in: parsing, the flow control of what comes in, and the streams it opens.

:class:`FrameReceiver` reads the frames of a client's connection for
:class:`~modelpilot.server.grpc.http2.Http2Connection`: it gathers each request's headers and
body, starts the handler once a request is complete (or must be answered at once), refuses
new streams the connection has no room for, and passes SETTINGS, WINDOW_UPDATE, PING,
RST_STREAM and GOAWAY on to what they change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelpilot.server.grpc.frames import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    MAX_WINDOW,
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
    setting,
    u32,
    unpad,
)
from modelpilot.server.grpc.headers import HEADER_LIST_LIMIT, HeaderDecoder
from modelpilot.server.grpc.http2_limits import Http2Limits
from modelpilot.server.grpc.stream import Stream

logger = logging.getLogger(__name__)

# What this server grants in its SETTINGS, and holds clients to: big windows, so that a client
# never waits on them for requests up to a few MB; larger frames than the default 16 KB, so
# that big tensors take fewer frames.
STREAM_WINDOW = 4 * 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
FRAME_LIMIT = 1024 * 1024
MAX_STREAMS = 1000


class FrameReceiver:
    """The frames a client sends, handled as they come; a part of
    :class:`~modelpilot.server.grpc.http2.Http2Connection`, which sets what is declared
    here."""

    answers_at_once: Callable[[Stream], bool]
    max_body: int
    limits: Http2Limits
    transport: asyncio.Transport | None
    streams: dict[int, Stream]
    _loop: asyncio.AbstractEventLoop
    _buffer: bytes  # the start of a frame not yet whole
    _preface: bool
    _headers_in: HeaderDecoder
    _last_id: int  # of the last stream the client opened
    _continued: tuple[int, int, list[bytes]] | None
    _peer_window: int
    _peer_stream_window: int
    _peer_frame: int
    _recv_window: int
    _recv_unacked: int
    _blocked: dict[int, Stream]
    _held: int
    _queued: int
    _budget: int
    _draining: bool

    if TYPE_CHECKING:

        def _start(self, stream: Stream) -> None: ...

        def _take(self, stream: Stream) -> bytes: ...

        def _unblock(self) -> bytes: ...

        def _forget(self, stream: Stream) -> None: ...

        def _close_if_drained(self) -> None: ...

        def _close(self, code: int, message: str) -> None: ...

        def _watch(self, when: float) -> None: ...

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        try:
            self._buffer = buffer[self._frames(buffer) :]
        except ProtocolError as exc:
            logger.debug("HTTP/2 connection error %d: %s", exc.code, exc)
            self._close(exc.code, str(exc))

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
