"""One mapping from the error tree to gRPC status codes, applied to every RPC."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from modelpilot.errors import ModelPilotError, Unavailable

logger = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


def mapped_errors(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Turn ``ModelPilotError`` into its status, and anything unexpected into INTERNAL.

    A decorator rather than an interceptor: grpc.aio interceptors see the handler, not the
    exception its coroutine raises, so this is the one place where both are at hand.
    """

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await handler(self, request, context)
        except ModelPilotError as exc:
            if isinstance(exc, Unavailable):
                context.set_trailing_metadata((("retry-after", str(round(exc.retry_after))),))
            await context.abort(grpc.StatusCode[exc.grpc_status], exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            logger.exception("unexpected error in %s", handler.__name__)
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error: {type(exc).__name__}: {exc}; the server logs have details",
            )
        raise AssertionError("context.abort always raises")  # pragma: no cover

    return wrapper
