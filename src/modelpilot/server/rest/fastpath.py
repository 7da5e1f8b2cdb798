"""The inference endpoints as bare ASGI, in front of the FastAPI app.

Under load the framework's per-request machinery (routing, dependency solving, exit stacks,
middleware layers) costs several times more than the inference itself. The hot endpoints are
matched here with string operations and handled by the same functions the FastAPI routes
use; everything else (and the OpenAPI docs of these endpoints) is FastAPI's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from modelpilot.config import Settings
from modelpilot.errors import ModelPilotError, Unavailable, internal_message
from modelpilot.server.rest.body import sent_request_id
from modelpilot.server.rest.errors import error_response
from modelpilot.server.rest.handlers import Reply, inference_route
from modelpilot.server.rest.limits import refused_too_large, too_large
from modelpilot.server.rest.shutdown import InFlightRequests
from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger(__name__)


class InferenceFastPath:
    """Serve ``POST .../infer`` and ``POST /predict/...`` directly; pass the rest on."""

    def __init__(self, app: ASGIApp, engine: InferenceEngine, settings: Settings) -> None:
        self.app = InFlightRequests(app)
        self.engine = engine
        self.limit = settings.max_request_bytes
        self.hang_ups = HangUps(settings.hang_up_check_seconds)

    def cut_off(self, message: str) -> int:
        """At the end of the shutdown grace period: cancel every request still being
        answered, each to be answered 503 with ``message``, as is every request from now on;
        how many were cancelled. The fast path's own are the ones ``hang_ups`` watches, so
        that it costs them nothing more than that."""
        return self.hang_ups.cut_off(message) + self.app.cut_off(message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route = inference_route(scope["path"])
        if route is None or "%" in scope["raw_path"].decode("latin-1"):
            # Percent-encoded names are rare; FastAPI decodes them properly.
            await self.app(scope, receive, send)
            return
        handler, model, version = route
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._body(scope["path"], headers, receive)
            reply = await self.hang_ups.answer(
                handler(self.engine, model, version, body, headers, self.limit), receive
            )
            if reply is None:
                return  # no one to answer; the engine counted the request as 499
        except ModelPilotError as exc:
            await error_response(exc, sent_request_id(headers))(scope, receive, send)
            return
        except Exception as exc:
            logger.exception("unexpected error on POST %s", scope["path"])
            error = ModelPilotError(internal_message(exc))
            await error_response(error, sent_request_id(headers))(scope, receive, send)
            return
        raw_headers = [
            (b"content-type", reply.media_type.encode()),
            (b"content-length", str(len(reply.body)).encode()),
        ]
        raw_headers += [(k.encode(), v.encode("latin-1")) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _body(self, path: str, headers: dict[str, str], receive: Receive) -> bytes:
        started = time.perf_counter()
        declared = headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > self.limit:
            raise await self._too_large(path, int(declared), started)
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ModelPilotError("the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise await self._too_large(path, None, started)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _too_large(self, path: str, size: int | None, started: float) -> ModelPilotError:
        return await refused_too_large(self.engine, path, too_large(size, self.limit), started)


class HangUps:
    """The requests being answered, and the clients among them that hang up.

    A client that hangs up has its request cancelled, as gRPC cancels a call whose stream
    is reset, and the engine counts it as 499 ("client closed request"). At the end of the
    shutdown grace period, the requests still being answered are cancelled too
    (:meth:`cut_off`), and raise ``Unavailable``: the server answers them 503.

    Once a request's body is read, its ``receive`` has nothing more to give but
    ``http.disconnect``. A task awaiting that for every request cost some 5 microseconds
    of CPU, a tenth of what a small request costs, to catch a rare event; so requests are
    only noted as they start, and every ``tick`` seconds (while any are in flight) those
    still being answered get such a task. A request answered less than ``tick`` after
    its client hung up may count as answered: the work was done, just for no one.
    """

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self._answering: set[_Watch] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._cut_off: str | None = None
        """What the requests cut off at shutdown are told, once they are."""

    async def answer(self, call: Coroutine[Any, Any, Reply], receive: Receive) -> Reply | None:
        """``call``'s reply, or None if the client hangs up first (``call`` is cancelled).
        ``Unavailable`` if the request is cut off, or comes after the cut-off (its body was
        still arriving): then ``call`` is closed unrun."""
        if self._cut_off is not None:
            call.close()
            raise Unavailable(self._cut_off)
        watch = _Watch(asyncio.current_task(), receive)
        self._answering.add(watch)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._look)
        try:
            return await call
        except asyncio.CancelledError:
            task = watch.task
            if task is None or not (watch.hung_up or watch.cut_off):
                raise  # cancelled from outside: neither by the client nor by the cut-off
            task.uncancel()
            if watch.hung_up:
                return None
            assert self._cut_off is not None
            raise Unavailable(self._cut_off) from None
        finally:
            self._answering.discard(watch)
            watch.task = None
            if watch.watcher is not None:
                watch.watcher.cancel()

    def cut_off(self, message: str) -> int:
        """Cancel every request being answered, each to raise ``Unavailable(message)``, as
        will every request from now on; how many were cancelled."""
        self._cut_off = message
        for watch in self._answering:
            if watch.task is not None:
                watch.cut_off = True
                watch.task.cancel()
        return len(self._answering)

    def _look(self) -> None:
        """Watch for the hang-up of every client whose request is still being answered."""
        self._timer = None
        if not self._answering:
            return
        loop = asyncio.get_running_loop()
        for watch in self._answering:
            if watch.watcher is None:
                watch.watcher = loop.create_task(watch.run())
        self._timer = loop.call_later(self.tick, self._look)


class _Watch:
    """One request being answered: cancels it if its client hangs up, once watched."""

    __slots__ = ("cut_off", "hung_up", "receive", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any] | None, receive: Receive) -> None:
        self.task = task
        """The task answering; None once it has answered."""
        self.receive = receive
        self.hung_up = False
        self.cut_off = False
        """Cancelled at the end of the shutdown grace period."""
        self.watcher: asyncio.Task[None] | None = None
        """The task awaiting the hang-up, once there is one (held: the event loop keeps
        only a weak reference to a task)."""

    async def run(self) -> None:
        try:
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except Exception:
            logger.exception("waiting for a client to hang up failed")
            return
        if self.task is not None:
            self.hung_up = True
            self.task.cancel()
