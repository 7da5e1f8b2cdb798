"""gRPC's unary calls over :mod:`http2`: headers, message framing, deadlines, status trailers.

What the gRPC-over-HTTP/2 specification asks of a server, for unary calls: POST only;
``content-type`` ``application/grpc`` (else HTTP 415, so that no plain HTTP client takes an
error for an answer); one length-prefixed message each way, compressed with the request's
``grpc-encoding`` (gzip or deflate) or not; ``grpc-timeout`` as the call's deadline; and the
outcome in ``grpc-status`` and ``grpc-message`` trailers, or in the response headers alone
when there is no answer ("trailers-only").
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
import time
import urllib.parse
import zlib
from typing import cast

from google.protobuf.message import DecodeError, Message

from modelpilot.errors import ModelPilotError, PayloadTooLarge, clipped, quoted
from modelpilot.server.grpc.errors import Status, status_of
from modelpilot.server.grpc.frames import literal
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.http2 import Http2Connection
from modelpilot.server.grpc.servicer import (
    INFER,
    NOT_STREAMED,
    REQUEST_ID,
    STREAM_INFER,
    InferenceServicer,
    Method,
    adopt_request_id,
    echoed_id,
    id_metadata,
    methods,
)
from modelpilot.server.grpc.stream import Stream
from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger(__name__)

STATUS_200 = b"\x88"  # ":status: 200", entry 8 of HPACK's static table
CONTENT_TYPE = literal("content-type", "application/grpc")
RESPONSE_HEADERS = STATUS_200 + CONTENT_TYPE
OK_TRAILERS = literal("grpc-status", "0")
ENCODINGS = "identity,deflate,gzip"

_length = struct.Struct(">I")
_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Bytes that grpc-message may carry as they are; the rest are percent-encoded.
_PLAIN = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class UnreadableMessage(ModelPilotError):
    """A call's request message that could not be read: none came, its length prefix is
    wrong, it does not inflate, or it is no protobuf of the method's request.

    Answered INTERNAL, as gRPC's own libraries answer it (their table of status codes has
    "Error parsing request proto" as INTERNAL), so counted as that code's HTTP equivalent,
    500, as the client's own gRPC metrics count it: counted as a BadRequest (400), it was a
    client error in this server's metrics and a server error in the client's, and the two
    never reconciled."""

    http_status = 500
    grpc_status = "INTERNAL"


class UnknownEncoding(ModelPilotError):
    """A call's request message compressed in an encoding this server does not read:
    UNIMPLEMENTED, as gRPC answers it, so counted as that code's HTTP equivalent, 501."""

    http_status = 501
    grpc_status = "UNIMPLEMENTED"


class CallFailed(Exception):
    """A call ends with this status before its method runs (bad framing, bad headers).

    ``counted_as`` is the error a ModelInfer call refused so is counted as, with the HTTP
    equivalent of the status the client was answered (REST counts its like so: 413 for a
    body over the limit); None for a request that is no gRPC call of the method (a GET,
    another content-type), which is not counted.
    """

    def __init__(
        self,
        name: str,
        message: str,
        http_status: int = 200,
        counted_as: type[ModelPilotError] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = Status(name, message)
        self.http_status = http_status
        self.counted_as = counted_as


class GrpcCalls:
    """The handler that :class:`Http2Connection` runs for each request."""

    def __init__(self, servicer: InferenceServicer, max_message: int) -> None:
        self.methods = methods(servicer)
        self.engine = servicer.engine
        self.max_message = max_message

    async def __call__(self, connection: Http2Connection, stream: Stream) -> None:
        method = None
        request: Message | None = None
        started = time.perf_counter()
        try:
            method = self._method(stream)
            request = self._request(stream, method)
            infer = method.path == INFER
            if infer:
                adopt_request_id(cast(pb.ModelInferRequest, request), stream.header(REQUEST_ID))
            timeout = deadline(stream.header("grpc-timeout"))
            if timeout is None:
                response = await method.call(request)
            else:
                response = await asyncio.wait_for(method.call(request), timeout)
            payload = response.SerializeToString()
            if len(payload) > self.max_message:
                raise CallFailed(
                    "RESOURCE_EXHAUSTED",
                    f"the response is {len(payload)} bytes, over the limit of "
                    f"{self.max_message} (MODELPILOT_GRPC_MAX_MESSAGE_BYTES)",
                )
        except CallFailed as exc:
            status = self._with_id(exc.status, stream, request)
            # Counted before it is answered, so that a client that reads the metrics once
            # answered finds its call among them (it raced the count, and lost on a busy core).
            if stream.header(":path") == INFER:
                await count_refused(self.engine, exc, started)
            connection.respond(stream, trailers_only(status, exc.http_status), None, None)
        except asyncio.TimeoutError:
            status = Status("DEADLINE_EXCEEDED", "the call's deadline (grpc-timeout) passed")
            status = self._with_id(status, stream, request)
            connection.respond(stream, trailers_only(status), None, None)
        except Exception as exc:
            status = status_of(exc, method.path if method else "a gRPC call")
            status = self._with_id(status, stream, request)
            connection.respond(stream, trailers_only(status), None, None)
        else:
            message = b"\x00" + _length.pack(len(payload)) + payload
            headers = RESPONSE_HEADERS
            if infer:
                for key, value in id_metadata(cast(pb.ModelInferResponse, response).id):
                    headers += literal(key, value)
            connection.respond(stream, headers, message, OK_TRAILERS)

    @staticmethod
    def _with_id(status: Status, stream: Stream, request: Message | None) -> Status:
        """``status`` with the client's request id in its metadata, for a ModelInfer call."""
        if stream.header(":path") != INFER:
            return status
        return status._replace(
            metadata=status.metadata + echoed_id(request, stream.header(REQUEST_ID))
        )

    def answers_at_once(self, stream: Stream) -> bool:
        """A call of a method this server does not have (a stream, ``ModelStreamInfer``) is
        answered UNIMPLEMENTED from its headers: a client that keeps its stream open would
        otherwise wait for an answer that comes only once it has sent everything."""
        return (stream.header(":path") or "") not in self.methods

    def _method(self, stream: Stream) -> Method:
        path = stream.header(":path") or ""
        if stream.header(":method") != "POST":
            raise CallFailed("UNIMPLEMENTED", "gRPC calls are POST requests", 405)
        content_type = stream.header("content-type") or ""
        if content_type not in ("application/grpc", "application/grpc+proto"):
            raise CallFailed(
                "UNKNOWN", f"content-type {quoted(content_type)} is not application/grpc", 415
            )
        if stream.overflow == "request":
            raise too_large(self.max_message)
        if stream.overflow == "connection":
            raise CallFailed(
                "RESOURCE_EXHAUSTED",
                "the requests still arriving on this connection are over four times the "
                f"limit of one ({self.max_message} bytes); finish some before starting more",
                counted_as=PayloadTooLarge,
            )
        method = self.methods.get(path)
        if method is None:
            said = NOT_STREAMED if path == STREAM_INFER else f"no method {clipped(path)}"
            raise CallFailed("UNIMPLEMENTED", said)
        return method

    def _request(self, stream: Stream, method: Method) -> Message:
        body = stream.body
        if len(body) < 5:
            raise CallFailed(
                "INTERNAL",
                "a unary call needs one request message; none came",
                counted_as=UnreadableMessage,
            )
        compressed = body[0]
        size = _length.unpack_from(body, 1)[0]
        if size != len(body) - 5:
            raise CallFailed(
                "INTERNAL",
                f"the request message says {size} bytes but {len(body) - 5} came; "
                "a unary call takes exactly one message",
                counted_as=UnreadableMessage,
            )
        data = body[5:]
        if compressed:
            data = self._decompress(stream.header("grpc-encoding") or "identity", data)
        return decode_message(method, data)

    def _decompress(self, encoding: str, data: bytes) -> bytes:
        if encoding == "gzip":
            wbits = 31
        elif encoding == "deflate":
            wbits = 15
        else:
            unknown = encoding != "identity"  # else: compressed, and said not to be
            raise CallFailed(
                "UNIMPLEMENTED" if unknown else "INTERNAL",
                f"a compressed message in grpc-encoding {quoted(encoding)}; "
                f"this server reads {ENCODINGS}",
                counted_as=UnknownEncoding if unknown else UnreadableMessage,
            )
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, self.max_message + 1)
        except zlib.error as exc:
            raise CallFailed(
                "INTERNAL",
                f"the {encoding} message does not inflate: {exc}",
                counted_as=UnreadableMessage,
            ) from None
        if len(out) > self.max_message:
            raise CallFailed(
                "RESOURCE_EXHAUSTED",
                f"the request inflates to over the limit of {self.max_message} bytes",
                counted_as=PayloadTooLarge,
            )
        return out


def too_large(max_message: int) -> CallFailed:
    """What a call whose request message is over ``max_message`` bytes ends with."""
    return CallFailed(
        "RESOURCE_EXHAUSTED",
        f"the request is over the limit of {max_message} bytes (MODELPILOT_GRPC_MAX_MESSAGE_BYTES)",
        counted_as=PayloadTooLarge,
    )


def decode_message(method: Method, data: bytes) -> Message:
    """``data`` as ``method``'s request message; CallFailed INTERNAL (what gRPC answers a
    message that does not parse with), counted as the ``UnreadableMessage`` that is, if it is
    not one."""
    try:
        return method.request_type.FromString(data)
    except DecodeError as exc:
        raise CallFailed(
            "INTERNAL",
            f"the request is not a {method.request_type.__name__}: {exc}",
            counted_as=UnreadableMessage,
        ) from None


async def count_refused(engine: InferenceEngine, failed: CallFailed, started: float) -> None:
    """Count a ModelInfer call refused before its message was read as REST counts its like
    (see ``CallFailed.counted_as``): under no model's name, as the name is in the message
    that was not read, so that a stream of garbage adds no series."""
    if failed.counted_as is not None:
        error = failed.counted_as(str(failed))
        await engine.refused(None, None, "grpc", error, time.perf_counter() - started)


def deadline(value: str | None) -> float | None:
    """Seconds from a ``grpc-timeout`` value (``100m``, ``5S``); None if absent or malformed."""
    if value is None:
        return None
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        logger.debug("ignoring a malformed grpc-timeout %r", value)
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


def trailers_only(status: Status, http_status: int = 200) -> bytes:
    """The one header block of an answer that is only a status."""
    head = STATUS_200 if http_status == 200 else literal(":status", str(http_status))
    block = head + CONTENT_TYPE + literal("grpc-status", str(status.code))
    if status.message:
        text = urllib.parse.quote(status.message, safe=_PLAIN)
        block += literal("grpc-message", text)
    if status.name == "UNIMPLEMENTED":
        block += literal("grpc-accept-encoding", ENCODINGS)
    for key, value in status.metadata:
        block += literal(key, value)
    return block
