"""Requests still running when the shutdown grace period ends: answered 503, not a traceback."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelpilot.errors import Unavailable
from modelpilot.server.rest.body import sent_request_id
from modelpilot.server.rest.errors import error_response


class InFlightRequests:
    """The HTTP requests being answered by ``app``, so that the server can cut off those still
    running when its shutdown grace period ends (the fast path passes here what it does not
    answer itself, and cuts off its own).

    :meth:`cut_off` cancels them (a model call may take far longer than the grace) and
    answers each 503 with ``{"error": ...}``, Retry-After and the client's x-request-id, an
    error that says to retry elsewhere; so is a request that arrives after the cut-off. Left
    to uvicorn, each would get a plain-text 500, and the log a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._running: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        self._message: str | None = None
        """What the requests cut off are told, once they are."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._message is not None:
            await self._answer(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self._running.add(task)
        try:
            await self.app(scope, receive, noting_start)
        except asyncio.CancelledError:
            if task not in self._cut:
                raise  # a cancellation that is not the cut-off's: uvicorn's to report
            task.uncancel()
            if not started:
                await self._answer(scope, receive, send)
            # Else part of the answer is out: uvicorn closes the connection, as it must.
        finally:
            self._running.discard(task)
            self._cut.discard(task)

    def cut_off(self, message: str) -> int:
        """Cancel every request still being answered, each to be answered 503 with
        ``message``, as is every request from now on; how many were cancelled."""
        self._message = message
        self._cut = set(self._running)
        for task in self._cut:
            task.cancel()
        return len(self._cut)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._message is not None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        error = Unavailable(self._message)
        await error_response(error, sent_request_id(headers))(scope, receive, send)
