"""The inference endpoints' work, from body bytes to reply bytes.

Both the FastAPI routes (which document the API) and the fast path (which serves it under
load) call these, so that there is one behaviour however a request arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelpilot.errors import BadRequest, InvalidInput, ModelPilotError, quoted
from modelpilot.protocol.json_codec import decode_request, encode_response, nested_json
from modelpilot.protocol.json_numbers import mentions_truths
from modelpilot.protocol.rows import request_from_records, request_from_rows
from modelpilot.protocol.types import InferenceRequest, InferenceResponse, Tensor
from modelpilot.server.rest.body import (
    body_request_id,
    decompress,
    header_request_id,
    id_header,
    json_text_object,
)
from modelpilot.serving.engine import InferenceEngine

HEADER_LENGTH = "inference-header-content-length"
JSON = "application/json"


@dataclass(slots=True)
class Reply:
    body: bytes
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


async def infer_reply(
    engine: InferenceEngine,
    name: str,
    version: str | None,
    body: bytes,
    headers: Mapping[str, str],
    limit: int,
) -> Reply:
    """``POST /v2/models/{name}[/versions/{version}]/infer``, JSON or binary tensors."""
    started = time.perf_counter()
    header_length: int | None = None
    try:
        body = decompress(body, headers.get("content-encoding", ""), limit)
        header_length = _header_length(headers.get(HEADER_LENGTH))
        inference = decode_request(body, header_length)
        if inference.id is None:
            inference.id = header_request_id(headers)
        else:
            inference.id = body_request_id(inference.id)
    except ModelPilotError as exc:
        error = await engine.refused(name, version, "rest", exc, time.perf_counter() - started)
        error.request_id = _sent_id(body, header_length)
        raise error from None
    except Exception as exc:
        engine.failed(name, "rest", exc, time.perf_counter() - started)
        raise
    result = await _infer(engine, name, inference, version)
    content, json_length = encode_response(result, inference)
    reply_headers = id_header(result.id)
    if json_length is None:
        return Reply(content, JSON, reply_headers)
    reply_headers["inference-header-content-length"] = str(json_length)
    return Reply(content, "application/octet-stream", reply_headers)


async def predict_reply(
    engine: InferenceEngine,
    name: str,
    version: str | None,
    body: bytes,
    headers: Mapping[str, str],
    limit: int,
) -> Reply:
    """``POST /predict/{name}``: rows or records in, predictions out."""
    started = time.perf_counter()
    request_id = None
    try:
        payload, text = json_text_object(body, headers, limit)
        # Looked for in the rows only where the text has them: a look at each value took
        # as long as NumPy's reading of the rows.
        booleans = mentions_truths(text)
        sent = payload.get("id")
        request_id = header_request_id(headers) if sent is None else body_request_id(sent)
        if "instances" in payload and "data" in payload:
            # Else "instances" won, and what "data" said was dropped without a word.
            raise BadRequest(
                'the body has both "data" and "instances"; send one of data or instances'
            )
        if "instances" in payload:
            inference = request_from_records(payload["instances"], request_id, booleans)
        elif "data" in payload:
            inference = request_from_rows(payload["data"], request_id, booleans)
        else:
            raise InvalidInput(
                'send {"data": [...]} (one row or a list of rows) or '
                '{"instances": [{feature: value, ...}, ...]}'
            )
    except ModelPilotError as exc:
        error = await engine.refused(name, version, "rest", exc, time.perf_counter() - started)
        error.request_id = request_id
        raise error from None
    except Exception as exc:
        engine.failed(name, "rest", exc, time.perf_counter() - started)
        raise
    result = await _infer(engine, name, inference, version)
    return Reply(_predictions(result), JSON, id_header(result.id))


async def _infer(
    engine: InferenceEngine, name: str, inference: InferenceRequest, version: str | None
) -> InferenceResponse:
    """The engine's answer to ``inference``; an error it raises carries the client's request
    id, which REST answers errors with too."""
    try:
        return await engine.infer(name, inference, version, transport="rest")
    except ModelPilotError as exc:
        exc.request_id = inference.id
        raise


def _header_length(header: str | None) -> int | None:
    """The Inference-Header-Content-Length header's bytes, None without one."""
    if header is None:
        return None
    try:
        return int(header)
    except ValueError:  # also past 4300 digits, which int() refuses to read
        raise BadRequest(
            f"Inference-Header-Content-Length must be a number of bytes, not {quoted(header)}"
        ) from None


def _sent_id(body: bytes, header_length: int | None) -> str | None:
    """The valid request id in a v2 body that failed to decode, if it has one; None leaves
    the answer to the x-request-id header's. Only errors pay for parsing the body again."""
    if header_length is not None and not 0 <= header_length <= len(body):
        return None
    try:
        payload = orjson.loads(body if header_length is None else body[:header_length])
        return body_request_id(payload.get("id")) if isinstance(payload, dict) else None
    except (orjson.JSONDecodeError, BadRequest):
        return None


def _predictions(result: InferenceResponse) -> bytes:
    """``/predict``'s answer: ``predictions``, the first output, one value per row (a column
    of one, as skl2onnx's regressors answer ``[N, 1]``, read as its values: each row's came
    as a list of one), and every output as it is."""
    outputs = {t.name: nested_json(t) for t in result.outputs}
    predictions: Any = []
    if result.outputs:
        first = result.outputs[0]
        if first.data.ndim == 2 and first.data.shape[1] == 1:
            predictions = nested_json(
                Tensor(first.name, first.datatype, (len(first.data),), first.data[:, 0])
            )
        else:
            predictions = outputs[first.name]
    body: dict[str, Any] = {
        "model": result.model_name,
        "version": result.model_version,
        "id": result.id,
        "predictions": predictions,
        "outputs": outputs,
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


Handler = Callable[..., Coroutine[Any, Any, Reply]]


def inference_route(path: str) -> tuple[Handler, str, str | None] | None:
    """(handler, model, version) of a ``POST`` to ``path`` if it is one of the inference
    endpoints, None for anything else."""
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        parts = path[len("/v2/models/") : -len("/infer")].split("/")
        if len(parts) == 1 and parts[0]:
            return infer_reply, parts[0], None
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return infer_reply, parts[0], parts[2]
        return None
    if path.startswith("/predict/"):
        parts = path[len("/predict/") :].split("/")
        if len(parts) == 1 and parts[0]:
            return predict_reply, parts[0], None
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return predict_reply, parts[0], parts[2]
    return None
