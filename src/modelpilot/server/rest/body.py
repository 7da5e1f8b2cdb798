"""Bodies: requests' decompression within the size limit, JSON objects and their OpenAPI
entry; the JSON answers of the routes that are not inferences; and the request id's header."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Response

from modelpilot.errors import BadRequest, PayloadTooLarge
from modelpilot.protocol.json_codec import parse_json
from modelpilot.protocol.types import checked_request_id


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
    payload = parse_json(decompress(body, headers.get("content-encoding", ""), limit))
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload


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
    """The x-request-id header for an answer with ``request_id``: none for an id beyond ASCII
    (HTTP/1.1 header values are bytes, and no encoding of them is agreed on), which the
    answer's body carries as it is."""
    if request_id is None or not request_id.isascii():
        return {}
    return {"x-request-id": request_id}


def sent_request_id(headers: Mapping[str, str]) -> str | None:
    """The request id in the client's x-request-id header, for an error answer to echo: None
    when there is none, or when it is no valid id (an error answer must not fail on it)."""
    try:
        return checked_request_id(headers.get("x-request-id"))
    except BadRequest:
        return None
