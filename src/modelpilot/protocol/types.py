"""Core inference types that every transport decodes into and encodes from.

They are plain slotted dataclasses holding NumPy arrays: no validation round-trips on the hot
path. Transports build them; the engine checks them against the model's signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpilot.errors import BadRequest, quoted

MAX_REQUEST_ID = 128
"""Characters a request id may have: it is kept with the logged request, and labels find
the request by it."""

CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
"""What a request id may not hold (Unicode's Cc): PostgreSQL stores no NUL, and an id goes
back in the x-request-id header."""
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


@dataclass(slots=True)
class Tensor:
    """A named tensor: ``data`` already has ``shape`` and the dtype of ``datatype``.

    BYTES tensors are object arrays whose elements are ``bytes``.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    """An output the caller asked for, with its parameters (for example ``binary_data``)."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferenceRequest:
    """One inference call: inputs, the outputs wanted (empty means all), request id."""

    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] = field(default_factory=list)


@dataclass(slots=True)
class InferenceResponse:
    """The answer: which version answered, the request id, and the output tensors."""

    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]
    parameters: dict[str, Any] = field(default_factory=dict)


def checked_request_id(value: Any) -> str | None:
    """A request id as a client sent it (a string, or a number), checked; None when absent.

    An id is stored with the inference log and looked up by labels, so it must be text that
    every store takes: at most ``MAX_REQUEST_ID`` characters, none of them a control
    character."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"the request id must be a string, not {type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_REQUEST_ID:
        raise BadRequest(
            f"the request id has {len(text)} characters; at most {MAX_REQUEST_ID} are allowed"
        )
    if not text.isprintable() and _CONTROL.search(text):  # the test in C first: fast
        raise BadRequest(f"the request id {quoted(text)} holds control characters")
    return text


def answerable_request_id(value: Any) -> str | None:
    """A request id as ``checked_request_id`` takes it, refused (BadRequest) if it begins or
    ends with a space: for an inference answered over REST or gRPC, whose answer carries the
    id in its ``x-request-id`` header (or metadata) as well. HTTP and HTTP/2 drop the spaces
    around a header's value, so the header and the answer's ``id`` would name two ids, and a
    label posted for what the header said would match nothing. Refused rather than trimmed,
    as the id is the client's: one that kept it with its spaces would label it so."""
    text = checked_request_id(value)
    if text is not None and (text[0] == " " or text[-1] == " "):
        raise BadRequest(
            f"the request id {quoted(text)} begins or ends with a space, which the answer's "
            "x-request-id header (gRPC metadata) cannot carry: HTTP drops it; send the id "
            "without the spaces"
        )
    return text
