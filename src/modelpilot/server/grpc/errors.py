"""One mapping from the error tree to gRPC status codes, for both servers."""

from __future__ import annotations

import logging
from typing import NamedTuple

from modelpilot.errors import ModelPilotError, Unavailable, internal_message, quoted

logger = logging.getLogger(__name__)

# The status codes of the gRPC protocol, by the names ``ModelPilotError.grpc_status`` uses.
STATUS_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


class Status(NamedTuple):
    """What a failed call answers: a status, its message, and trailing metadata."""

    name: str
    message: str
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def code(self) -> int:
        return STATUS_CODES[self.name]


def status_of(exc: Exception, method: str) -> Status:
    """``ModelPilotError`` to its status; anything unexpected to INTERNAL, logged."""
    if isinstance(exc, ModelPilotError):
        metadata: tuple[tuple[str, str], ...] = ()
        if isinstance(exc, Unavailable):
            metadata = (("retry-after", str(round(exc.retry_after))),)
        return Status(exc.grpc_status, said(exc), metadata)
    logger.error("unexpected error in %s", method, exc_info=exc)
    return Status("INTERNAL", internal_message(exc))


def said(exc: ModelPilotError) -> str:
    """``exc``'s message, with the gRPC call that the call it advises is, if any (REST's
    mapping names its paths: ``server/rest/errors.py``)."""
    call = exc.next_call
    if call is None:
        return exc.message
    if call.kind == "load":
        named = f"RepositoryModelLoad, model_name {quoted(call.model)}"
    elif call.kind == "ready":
        version = f", version {quoted(call.version)}" if call.version else ""
        named = f"ModelReady, name {quoted(call.model)}{version}"
    else:
        named = "ServerMetadata"
    return f"{exc.message} (gRPC {named})"
