"""Bodies: requests' decompression within the size limit, JSON objects and their OpenAPI
entry; the JSON answers of the routes that are not inferences; and the request id's header."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Response

from modelpilot.errors import BadRequest, PayloadTooLarge, quoted
from modelpilot.protocol.json_codec import parse_json
from modelpilot.protocol.types import answerable_request_id, checked_request_id


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (gzip or deflate), never past ``limit``; it
    must be one whole stream."""
    encoding = encoding.lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate")
    # wbits 16+MAX for gzip, MAX for zlib ("deflate" in HTTP means zlib-wrapped).
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding} data: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body is over the limit of {limit} bytes")
    # Else a cut-short stream read as JSON cut short, and bytes after the stream's end were
    # dropped without a word.
    if not inflater.eof:
        raise BadRequest(
            f"the body is not a whole {encoding} stream: it ends before the stream does (cut "
            "short?); send all of it"
        )
    if inflater.unused_data:
        raise BadRequest(
            f"the body goes on for {len(inflater.unused_data)} bytes after its {encoding} "
            "stream ends; send the one stream alone"
        )
    return data


def json_object(body: bytes, headers: Mapping[str, str], limit: int) -> dict[str, Any]:
    return json_text_object(body, headers, limit)[0]


def json_text_object(
    body: bytes, headers: Mapping[str, str], limit: int
) -> tuple[dict[str, Any], bytes]:
    """The body's JSON object, and its text (decompressed), for a look at what it holds."""
    text = decompress(body, headers.get("content-encoding", ""), limit)
    payload = parse_json(text)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload, text


def documented_json_body(schema: dict[str, Any], examples: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of an endpoint that reads its JSON body itself, for the
    route's ``openapi_extra``: such a body is read whatever its Content-Type (``curl -d``
    sends form-encoded), which a declared pydantic body would not be."""
    content = {"schema": schema, "examples": {k: {"value": v} for k, v in examples.items()}}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def json_response(payload: Any, status: int = 200) -> Response:
    """``payload`` as a JSON answer with ``status``."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def id_header(request_id: str | None) -> dict[str, str]:
    """The x-request-id header for an answer with ``request_id``: none for an id beyond ASCII,
    which the answer's body carries as it is. HTTP header values are bytes that clients read
    as they please (Go and curl as UTF-8, Python's requests and Node as Latin-1): a header
    that one of them misread would give a wrong id without a word, and labels posted with it
    would match nothing; a header missing is seen."""
    if request_id is None or not request_id.isascii():
        return {}
    return {"x-request-id": request_id}


def header_request_id(headers: Mapping[str, str]) -> str | None:
    """The request id in the client's x-request-id header, read as UTF-8 and checked (None
    without one); BadRequest if its bytes are not UTF-8 or it is no valid id.

    The ASGI server hands header values over as bytes, which arrive here as Latin-1 text (each
    byte one character): read so, the UTF-8 of ``hdr-é`` became the id ``hdr-Ã©``, and a label
    posted for ``hdr-é`` matched nothing. UTF-8 is what clients send for text (Go, curl from a
    UTF-8 shell, Node) and what the body's JSON holds; other bytes are refused rather than
    guessed at."""
    value = headers.get("x-request-id")
    if value is None:
        return None
    sent = value.encode("latin-1")
    try:
        text = sent.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            f"the x-request-id header is not UTF-8 text: its bytes are {quoted(sent)}. Send "
            "the id in UTF-8 (Python's requests and http.client send a str header in "
            'Latin-1: pass it as bytes, id.encode()), or as the body\'s "id"'
        ) from None
    return checked_request_id(text)


def body_request_id(value: Any) -> str | None:
    """A request id from a body, checked as every transport checks the id of an inference
    (``answerable_request_id``: no spaces around it, which the x-request-id header could not
    carry)."""
    return answerable_request_id(value)


def sent_request_id(headers: Mapping[str, str]) -> str | None:
    """The request id in the client's x-request-id header, for an error answer to echo: None
    when there is none, or when it is no valid id (an error answer must not fail on it)."""
    try:
        return header_request_id(headers)
    except BadRequest:
        return None
