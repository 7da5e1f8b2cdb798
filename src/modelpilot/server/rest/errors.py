"""One mapping from the error tree to HTTP responses: status, ``{"error": ...}``, headers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from modelpilot.errors import ModelPilotError, Unavailable, clipped, internal_message
from modelpilot.server.rest.body import id_header, sent_request_id

logger = logging.getLogger(__name__)


def error_response(exc: ModelPilotError, sent_id: str | None = None) -> JSONResponse:
    """The answer to ``exc``, with the request id it carries, else ``sent_id`` (the client's
    x-request-id header's, for an error raised before the body gave an id, if it had one)."""
    headers = id_header(exc.request_id if exc.request_id is not None else sent_id)
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse({"error": said(exc)}, status_code=exc.http_status, headers=headers)


def said(exc: ModelPilotError) -> str:
    """``exc``'s message, with the REST request that the call it advises is, if any."""
    call = exc.next_call
    if call is None:
        return exc.message
    if call.kind == "load":
        path = f"POST /v2/repository/models/{call.model}/load"
    elif call.kind == "ready":
        versions = f"/versions/{call.version}" if call.version else ""
        path = f"GET /v2/models/{call.model}{versions}/ready"
    else:
        path = "GET /v2"
    return f"{exc.message} ({path})"


async def _modelpilot_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelPilotError)
    return error_response(exc, sent_request_id(request.headers))


PROBLEMS_SHOWN = 5
"""Validation errors an answer lists, the first ones: a feedback post of 100,000 bad labels
was answered with all 100,000 of them, 5.7 MB (more than the post)."""


def invalid_request(errors: Sequence[Any]) -> str:
    """Pydantic's validation errors as one line: where, and what is wrong there; the first
    ``PROBLEMS_SHOWN`` of them, and how many more (as a 404 lists unknown request ids)."""
    shown = "; ".join(clipped(_problem(e)) for e in errors[:PROBLEMS_SHOWN])
    more = len(errors) - PROBLEMS_SHOWN
    return f"invalid request: {shown}" + (f"; and {more} more problems" if more > 0 else "")


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    # A validator's ValueError comes as "Value error, <its message>".
    what = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {what}" if where else what


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"error": invalid_request(exc.errors())},
        status_code=422,
        headers=id_header(sent_request_id(request.headers)),
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {clipped(request.url.path)}; see /docs"
    headers = {**(exc.headers or {}), **id_header(sent_request_id(request.headers))}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed(request))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> list[str]:
    """The methods some route takes at ``request``'s path: Starlette's 405 names those of the
    first route alone, and ``/v2/repository/index`` is two routes (GET, POST), answered
    "GET". Each method is tried as the router would (its routes may be included routers);
    HEAD wherever GET is, as ``head.HeadAsGet`` serves it."""
    routes = request.app.router.routes
    allowed = {
        method
        for method in _METHODS
        if any(
            isinstance(route, BaseRoute)
            and route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in routes
        )
    }
    return sorted(allowed | {"HEAD"} if "GET" in allowed else allowed)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client hung up, or its body did not come in time (the server has answered 408 and
    # closes the connection): nothing failed here, and no one hears this answer. 499, "client
    # closed request", as the engine counts a client that hangs up on a running request.
    logger.debug("the client went away during %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "the client went away before its request had all come"},
        status_code=499,
        headers=id_header(sent_request_id(request.headers)),
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": internal_message(exc)},
        status_code=500,
        headers=id_header(sent_request_id(request.headers)),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelPilotError, _modelpilot_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # Handled as the client's, not as an error of the server's: a handler of Exception
    # itself logs a traceback, and starlette raises the exception again for uvicorn to log.
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
