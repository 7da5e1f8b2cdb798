"""The REST port's limits on each connection: time and room for a request, a client that
takes nothing, and the number of connections."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import httptools
import orjson

from modelpilot.config import Settings
from modelpilot.errors import ModelPilotError
from modelpilot.server.rest.handlers import Handler, inference_route
from modelpilot.server.rest.limits import HeadersTooLarge
from modelpilot.server.rest.protocol import CoalescingHttpProtocol
from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger("modelpilot.server")

HEAD_LIMIT_BYTES = 64 * 1024
"""Largest request line and headers a REST client may send (431 past it), as much as the gRPC
port takes in a header list; nginx takes 8 to 32 KiB."""

LINGER_SECONDS = 5.0
"""How long a connection whose request was refused before its head ended (431) reads on, and
drops, what its client still sends, so that closing it does not reset the connection before
the client has read its answer (RFC 9112, 9.6)."""


LAST_REQUEST_SECONDS = 1.0
"""How long a connection that has sent no request yet when the server shuts down still gets
to send its first (within its header timeout): its client connected to send one, likely as
the port closed, and closing it at once reset that request once it came."""


@dataclass(frozen=True)
class HttpLimits:
    """What a REST client may take: connections of one server, time for a request and for
    taking its answer, and room for a request's line and headers."""

    max_connections: int
    header_timeout: float
    body_timeout: float
    send_timeout: float
    max_head_bytes: int = HEAD_LIMIT_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            settings.max_connections,
            settings.header_timeout_seconds,
            settings.body_timeout_seconds,
            settings.send_timeout_seconds,
        )


class GuardedHttpProtocol(CoalescingHttpProtocol):
    """uvicorn's HTTP/1.1 protocol with the limits uvicorn lacks: time for a request's headers
    and body, room for its line and headers, and a number of connections.

    uvicorn closes a connection that waits for its next request (``timeout_keep_alive``), but
    not one that never finishes a request: a client sending a byte now and then, or nothing,
    held its connection and what it had sent for ever, and enough of them took every file the
    process may open. Here a request's line and headers must come within the header timeout
    (counted from the connection's start for its first request, else from the request's first
    byte), and its body within the body timeout of its headers; past either the client gets
    408 and the connection is closed (a connection that sent nothing is just closed). While
    the server itself holds a request up (pipelined behind another, or its body not read
    yet), its clock starts again. A client that takes nothing of its answers for the send
    timeout (the server holding more than uvicorn's high-water mark for it) is dropped: its
    answer was kept for as long as it kept the connection. A connection past
    ``max_connections`` is answered 503 and closed at once, before it sends anything.

    Nor does uvicorn bound a request's head: httptools gathers a header's value by copying it
    again with every part that arrives, so one 100 MB header held the event loop, and every
    other client with it, for seconds. Here no more than ``max_head_bytes`` reach the parser
    before the head ends (the bytes of a head that begins in the read that ends the request
    before it are not counted, so it may get up to that read's size more); past it the client
    gets 431 once the requests before it are answered, and the connection is closed; a
    prediction is counted as refused, as one whose body is over its limit is (and told of a
    model that does not exist first, 404).

    One timer per connection: a request only notes its deadline, and the timer, when it
    fires, either acts or waits for the deadline noted by then.
    """

    limits: ClassVar[HttpLimits]
    engine: ClassVar[InferenceEngine | None] = None
    """Counts refused heads of predictions, if given."""
    closing: ClassVar[bool] = False
    """Set on a server's class as it shuts down: each connection closes after its next answer
    (``connection: close``), and a client's next request opens a new one."""

    @classmethod
    def with_limits(
        cls, limits: HttpLimits, engine: InferenceEngine | None = None
    ) -> type[GuardedHttpProtocol]:
        """The protocol class for a server with ``limits`` (uvicorn takes a class), whose
        refusals of predictions ``engine`` counts."""
        return type(cls.__name__, (cls,), {"limits": limits, "engine": engine})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # for the request being read; None between them
        self._waiting_for = "a request"  # what the deadline is for: "headers" or "body" next
        self._stalled: asyncio.TimerHandle | None = None  # while the client takes nothing
        self._head_room: int | None = self.limits.max_head_bytes
        """Bytes the head being read may still take; None once it has ended."""
        self._head_started: float | None = None  # the head's first byte, while it is read
        self._discarding = False  # what comes is dropped: refused, or the WebSocket's now
        self._refusal: ModelPilotError | None = None  # to answer once the others are
        self._counting: asyncio.Task[None] | None = None  # held: the loop's ref is weak
        self._last = False  # the server is shutting down: this request is the last one

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limits.max_connections
        if len(self.connections) > limit:
            logger.debug("refused a connection: %d are open", limit)
            self._answer_and_close(
                503,
                f"the server holds its limit of {limit} connections "
                "(MODELPILOT_MAX_CONNECTIONS); try again shortly, or another server",
            )
            return
        self._expect("a request", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._stalled):
            if timer is not None:
                timer.cancel()
        self._timer = self._stalled = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        room = self._head_room
        if room is None or len(data) <= room:
            if room is not None:
                self._head_room = room - len(data)
            super().data_received(data)
            return
        if self._discarding:
            return
        # The head may take ``room`` bytes more: the parser gets those alone, and the rest
        # only if the head ended within them (its end sets the room anew).
        self._head_room = 0
        if room:
            super().data_received(data[:room])
        if self._discarding or self.transport.is_closing():
            return  # upgraded to a WebSocket, or answered 400
        if self._head_room == 0:
            self._refuse_head()
        else:
            self.data_received(data[room:])

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.limits.send_timeout, self._drop)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _drop(self) -> None:
        self._stalled = None
        logger.debug("dropping a connection whose client has taken nothing for a while")
        self.transport.abort()  # closing would wait for the client to read what is written

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = self.loop.time()
        if self._deadline is None:
            self._expect("headers", self.limits.header_timeout)
        else:
            self._waiting_for = "headers"  # the first request: timed from the connection

    def on_headers_complete(self) -> None:
        self._head_room = None
        self._head_started = None
        super().on_headers_complete()
        if (self.closing or self._last) and self.cycle is not None:
            self.cycle.keep_alive = False
        self._expect("body", self.limits.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline = None
        self._head_room = self.limits.max_head_bytes

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None:
            self._answer_refusal()

    def shutdown(self) -> None:
        """Close the connection as the server shuts down: now if it is idle, else after its
        answer (uvicorn's way), and if no request has begun on it yet, after the first, should
        one come within ``LAST_REQUEST_SECONDS``.

        uvicorn closed such a connection at once too, and a request its client had sent by
        then (the kernel takes connections before the server accepts them: the queued ones
        taken as the port closed, above all) was reset unanswered.
        """
        if self.cycle is not None or self._discarding or self.transport.is_closing():
            super().shutdown()
            return
        self._last = True
        deadline = self._deadline
        if deadline is None or deadline > self.loop.time() + LAST_REQUEST_SECONDS:
            self._expect(self._waiting_for, LAST_REQUEST_SECONDS)

    def handle_websocket_upgrade(self) -> None:
        self._deadline = None  # the connection is the WebSocket protocol's from now on
        self._discarding = True
        super().handle_websocket_upgrade()

    def _refuse_head(self) -> None:
        """Refuse the request whose line and headers went past the limit: 431, or 404 for a
        prediction of a model that does not exist (counted, as the engine counts a prediction
        whose body it could not read), once the requests before it are answered."""
        self._discarding = True
        self._deadline = None  # its time no longer matters
        self.transport.pause_reading()
        limit = self.limits.max_head_bytes
        error = HeadersTooLarge(
            f"the request's line and headers are over the limit of {limit} bytes; send fewer "
            "or shorter headers (data belongs in the body)"
        )
        logger.debug("refusing a request: %s", error)
        engine, route, started = self.engine, self._route(), self._head_started
        if engine is None or route is None or started is None:
            self._refusal = error
            self._answer_refusal()
            return
        _, model, version = route
        seconds = self.loop.time() - started
        self._counting = self.loop.create_task(self._count(engine, model, version, error, seconds))

    async def _count(
        self,
        engine: InferenceEngine,
        model: str,
        version: str | None,
        error: HeadersTooLarge,
        seconds: float,
    ) -> None:
        try:
            self._refusal = await engine.refused(model, version, "rest", error, seconds)
        except Exception:
            logger.exception("counting a refused request of %s failed", model)
            self._refusal = error
        self._answer_refusal()

    def _route(self) -> tuple[Handler, str, str | None] | None:
        """The inference endpoint the refused head is a ``POST`` to, if its request line came
        in full: unless its URL took all of the head, the parser has read past its end."""
        if self._head_started is None:
            return None  # no request began: nothing came but empty lines
        method = self.parser.get_method()
        if method != b"POST" or len(method) + 1 + len(self.url) >= self.limits.max_head_bytes:
            return None
        try:
            path = httptools.parse_url(self.url).path
        except httptools.HttpParserInvalidURLError:
            return None
        return inference_route(urllib.parse.unquote(path.decode("latin-1")))

    def _answer_refusal(self) -> None:
        """Answer the refused request, unless the requests before it are still answered:
        then when they are (``on_response_complete``)."""
        cycle = self.cycle
        if self.transport.is_closing() or self._refusal is None:
            return
        if self.pipeline or (cycle is not None and not cycle.response_complete):
            return
        error, self._refusal = self._refusal, None
        self._answer_and_close(error.http_status, error.message, linger=True)

    def _expect(self, what: str, seconds: float) -> None:
        self._waiting_for = what
        deadline = self._deadline = self.loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return  # no request being read: uvicorn's keep-alive timeout, or the app's time
        now = self.loop.time()
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._expire)
            return
        limits = self.limits
        what = self._waiting_for
        if self.flow.read_paused:
            self._expect(what, limits.body_timeout if what == "body" else limits.header_timeout)
            return
        if what == "a request":
            self.transport.close()  # nothing came: nothing to answer
            return
        if what == "headers":
            message = (
                f"the request's line and headers did not all come within "
                f"{limits.header_timeout:g} s (MODELPILOT_HEADER_TIMEOUT_SECONDS)"
            )
            answered = False
        else:
            message = (
                f"the request's body did not all come within {limits.body_timeout:g} s of its "
                "headers (MODELPILOT_BODY_TIMEOUT_SECONDS); send it faster, or in smaller "
                "requests"
            )
            cycle = self.cycle
            answered = cycle.response_started
            # The app reading the body hears that the client is gone; its answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        logger.debug("closing a connection: %s", message)
        if answered:
            self.transport.close()
        else:
            self._answer_and_close(408, message)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser refused (``httptools``), before the app
        could see it: a Content-Length of ``-1``, ``1e3`` or past 2**64 - 1, a header line
        without a colon. It answered the text "Invalid HTTP request received.", where every
        other error is ``{"error": ...}``; it says so there too (and logs it, as it did)."""
        self._answer_and_close(
            400,
            "the request is not valid HTTP/1.1: its request line or headers could not be "
            "read (a Content-Length must be plain digits, at most 18446744073709551615; "
            "each header a line 'Name: value')",
        )

    def _answer_and_close(self, status: int, message: str, linger: bool = False) -> None:
        """Answer ``status`` with ``message`` and close the connection; with ``linger``,
        once the client has closed its end, or after ``LINGER_SECONDS``.

        Closing with some of the client's request unread resets the connection, and the
        client would likely lose the answer: lingering, the answer goes with a FIN, and what
        still comes is read and dropped."""
        body = orjson.dumps({"error": message})
        head = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        if status == 503:
            head.append("retry-after: 1")
        self.transport.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        if not linger:
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
