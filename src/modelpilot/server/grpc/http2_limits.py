"""A connection's limits in time and number, and the one timer that holds it to them.

A client gets a bounded share of the server's time: the connection preface, each request's
body and each answer held back by flow control must come or go within their timeouts, a
connection with no call open is closed once idle, and one whose client reads nothing is
dropped. :class:`ConnectionDeadlines` keeps these deadlines for
:class:`~modelpilot.server.grpc.http2.Http2Connection`, with one timer per connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelpilot.config import Settings
from modelpilot.server.grpc.frames import CANCEL, NO_ERROR, RST_STREAM, frame, u32
from modelpilot.server.grpc.stream import Stream

logger = logging.getLogger(__name__)


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


class ConnectionDeadlines:
    """The deadlines of a connection's work, and the one timer that ends what overruns them;
    a part of :class:`~modelpilot.server.grpc.http2.Http2Connection`, which sets what is
    declared here."""

    limits: Http2Limits
    transport: asyncio.Transport | None
    streams: dict[int, Stream]
    _loop: asyncio.AbstractEventLoop
    _timer: asyncio.TimerHandle | None  # for the earliest deadline of the connection's work
    _preface: bool  # the client's connection preface has come
    _started: float
    _quiet_since: float  # when the last call ended (while none is open)
    _write_paused_since: float | None
    _blocked: dict[int, Stream]  # streams whose answers wait for the client's window
    _held: int  # bytes of request bodies still arriving

    if TYPE_CHECKING:

        def goaway(self, reason: str = "") -> None: ...

        def _forget(self, stream: Stream) -> None: ...

        def _close(self, code: int, message: str) -> None: ...

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
