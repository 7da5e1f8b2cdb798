"""The one error hierarchy that every transport maps to its own status codes."""

from __future__ import annotations

from typing import Literal, NamedTuple


class NextCall(NamedTuple):
    """A call that an error's message advises the client to make next, which each transport
    names its own way, after the message (REST by its path, gRPC by its method): the core
    does not know a transport's paths, and a gRPC client told to ``POST /v2/...`` was told
    what it cannot do.

    ``load``: load ``model`` through the repository API; ``ready``: ask whether ``model``'s
    ``version`` is ready; ``extensions``: read the server's metadata, which lists them."""

    kind: Literal["load", "ready", "extensions"]
    model: str = ""
    version: str = ""


class ModelPilotError(Exception):
    """Base of every error ModelPilot raises on purpose.

    ``http_status`` and ``grpc_status`` (the name of a ``grpc.StatusCode`` member, kept as a
    string so that this module depends on nothing) are read once, by each transport's error
    mapper. The message is shown to the caller: it says what was wrong and how to fix it.
    """

    http_status: int = 500
    grpc_status: str = "INTERNAL"
    request_id: str | None = None
    """The id the client gave the request that failed, once a transport knows it (REST
    answers with it in x-request-id, as it does on success)."""
    next_call: NextCall | None = None
    """The call the message advises, that each transport names after it (``NextCall``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def advising(self, call: NextCall) -> ModelPilotError:
        """This error, with ``call`` as the one its message advises; for ``raise``."""
        self.next_call = call
        return self

    def __str__(self) -> str:
        return self.message


class BadRequest(ModelPilotError):
    """The request could not be parsed: malformed JSON, a broken binary header."""

    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class InvalidInput(BadRequest):
    """The request parsed, but does not fit the model: shape, dtype, features, NaN, empty."""

    http_status = 422


class NotFound(ModelPilotError):
    """Something named in the request does not exist."""

    http_status = 404
    grpc_status = "NOT_FOUND"


class ModelNotFound(NotFound):
    """No model of that name is registered or served."""


class VersionNotFound(NotFound):
    """The model exists, but not that version."""


class AliasNotFound(NotFound):
    """The model exists, but no alias of that name points anywhere."""


class Conflict(ModelPilotError):
    """The request clashes with the current state (for example, an invalid model name)."""

    http_status = 409
    grpc_status = "FAILED_PRECONDITION"


class PayloadTooLarge(ModelPilotError):
    """The request body is over the configured limit."""

    http_status = 413
    grpc_status = "RESOURCE_EXHAUSTED"


class Unavailable(ModelPilotError):
    """The server cannot take the request now; the client may retry later."""

    http_status = 503
    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """Too many requests are queued; back off and retry."""


class ModelNotReady(Unavailable):
    """The model is being loaded or was unloaded."""


class InferenceTimeout(ModelPilotError):
    """The request did not finish within its deadline."""

    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"


class ModelFailure(ModelPilotError):
    """The model raised while predicting on input that passed validation."""

    http_status = 500
    grpc_status = "INTERNAL"


class ArtifactError(ModelPilotError):
    """A stored artifact is missing, corrupted (sha256 mismatch) or cannot be loaded."""

    http_status = 500
    grpc_status = "INTERNAL"


class RegistryError(ModelPilotError):
    """The registry cannot be opened, or is in a state it should never be in."""

    http_status = 500
    grpc_status = "INTERNAL"


class RegistryUnavailable(Unavailable, RegistryError):
    """The registry's database does not answer for now (down, restarting, out of reach).

    Unavailable, not a failure of the server: clients and proxies retry a 503 (gRPC
    UNAVAILABLE) and take a 500 as final. Its message names no host, port or driver: those
    are in the server's log, not in an answer to whoever asked."""


class MissingExtra(ModelPilotError):
    """An optional dependency is needed but not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs the optional package {package!r}; "
            f"install it with: pip install 'modelpilot[{extra}]'"
        )
        self.package = package
        self.extra = extra


class BadSettings(ModelPilotError):
    """A setting (a ``MODELPILOT_*`` variable or a flag) has a value it cannot take."""


QUOTED_CHARACTERS = 100
"""The most of a client's text that an error message quotes."""


def quoted(value: object, limit: int = QUOTED_CHARACTERS) -> str:
    """``value`` as an error message shows something the client sent: its ``repr``, cut to
    its first ``limit`` characters (with how long it was) when longer.

    Names, ids and headers come from the client at any length: quoted whole, a
    100,000-character model name came back as a 100 KB answer, and as a gRPC status message
    that clients refuse to read."""
    text = value if isinstance(value, str) else _shown(value)
    if len(text) <= limit:
        return repr(value) if isinstance(value, str) else text
    shown = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{shown}... ({len(text)} characters)"


def clipped(text: str, limit: int = 3 * QUOTED_CHARACTERS) -> str:
    """Free text for an error message that may quote the client (a library's complaint about
    a value it was given), cut as ``quoted`` cuts, without quoting it."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _shown(value: object) -> str:
    try:
        return repr(value)
    except ValueError:  # an integer past Python's 4300-digit limit of int-to-text
        if not isinstance(value, int):
            raise
        return f"<an integer of {value.bit_length()} bits>"


def internal_message(exc: BaseException) -> str:
    """What a client is told of an error nobody expected: its kind and the first line of
    what it says, no more (the rest, a database's statement, say, stays in the logs)."""
    lines = str(exc).strip().splitlines()
    said = f": {lines[0][:200]}" if lines else ""
    return f"internal error: {type(exc).__name__}{said}; the server logs have details"
