"""Open Inference Protocol v2 over HTTP: health, metadata, inference, repository."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

import modelpilot
from modelpilot.errors import BadRequest, quoted
from modelpilot.protocol.datatypes import DATATYPES
from modelpilot.protocol.raw import MAX_DIMENSIONS
from modelpilot.protocol.types import MAX_REQUEST_ID
from modelpilot.server.rest.body import documented_json_body, json_object, json_response
from modelpilot.server.rest.handlers import infer_reply
from modelpilot.server.rest.openapi import (
    ID_PATTERN,
    INFER_RESPONSE,
    INFERENCE_ERRORS,
    MODEL_METADATA,
    answer,
    errors,
)
from modelpilot.serving.engine import InferenceEngine, ModelMetadata

router = APIRouter(tags=["Open Inference Protocol v2"])

EXTENSIONS = ["binary_tensor_data", "model_repository", "model_configuration", "statistics"]

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "maxItems": MAX_DIMENSIONS,
            "description": "[] is a scalar: one value",
        },
        "datatype": {"type": "string", "enum": sorted(DATATYPES), "example": "FP64"},
        "parameters": {"type": "object"},
        "data": {
            "type": "array",
            "items": {},
            "description": "The values, flat or nested, in row-major order; [value] for shape "
            "[]. Absent when sent as binary data (parameters.binary_data_size).",
        },
    },
}
INFER_BODY = documented_json_body(
    {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "maxLength": MAX_REQUEST_ID, "pattern": ID_PATTERN},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
            },
        },
    },
    {
        "row": {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "data": [5.1, 3.5, 1.4, 0.2],
                }
            ]
        }
    },
)


def _engine(request: Request) -> InferenceEngine:
    engine: InferenceEngine = request.app.state.engine
    return engine


_LIVE = answer({"type": "object", "properties": {"live": {"type": "boolean"}}})
_READY = answer({"type": "object", "properties": {"ready": {"type": "boolean"}}})
_NOT_READY = {**_READY, "description": "Not ready (the body says so too)."}
_INDEX = answer(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
                "reason": {"type": "string"},
            },
        },
    }
)


@router.get(
    "/v2/health/live",
    summary="Is the server live?",
    responses={200: _LIVE, 503: {**_LIVE, "description": "Shutting down."}},
)
async def live(request: Request) -> Response:
    ok = _engine(request).live
    return json_response({"live": ok}, 200 if ok else 503)


@router.get(
    "/v2/health/ready",
    summary="Is every served model loaded?",
    responses={200: _READY, 503: _NOT_READY},
)
async def ready(request: Request) -> Response:
    ok = _engine(request).ready
    return json_response({"ready": ok}, 200 if ok else 503)


@router.get(
    "/v2",
    summary="Server metadata",
    responses={
        200: answer(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "extensions": {"type": "array", "items": {"type": "string"}},
                },
            }
        )
    },
)
async def server_metadata() -> Response:
    return json_response(
        {"name": "modelpilot", "version": modelpilot.__version__, "extensions": EXTENSIONS}
    )


def _metadata(meta: ModelMetadata) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": meta.name,
        "versions": list(meta.versions),
        "platform": meta.platform,
        "inputs": [s.to_dict() for s in meta.inputs],
        "outputs": [s.to_dict() for s in meta.outputs],
    }
    if meta.feature_names:
        body["parameters"] = {"feature_names": list(meta.feature_names)}
    return body


@router.get(
    "/v2/models/{name}",
    summary="Model metadata",
    responses={200: answer(MODEL_METADATA), **errors(404)},
)
async def model_metadata(name: str, request: Request) -> Response:
    return json_response(_metadata(await _engine(request).metadata(name)))


@router.get(
    "/v2/models/{name}/versions/{version}",
    summary="Model version metadata",
    responses={200: answer(MODEL_METADATA), **errors(400, 404)},
)
async def version_metadata(name: str, version: str, request: Request) -> Response:
    return json_response(_metadata(await _engine(request).metadata(name, version)))


async def _ready(request: Request, name: str, version: str | None) -> bool:
    """Whether a request would reach a loaded model now; when it would get 404 (a model or
    version that does not exist, or is not served), that error is raised."""
    engine = _engine(request)
    ready = await engine.model_ready(name, version)
    if not ready:
        await engine.check(name, version)
    return ready


@router.get(
    "/v2/models/{name}/ready",
    summary="Is the model loaded?",
    responses={200: _READY, 503: _NOT_READY, **errors(404)},
)
async def model_ready(name: str, request: Request) -> Response:
    """200 when ready, 503 while loading, 404 for a model this server does not serve."""
    ok = await _ready(request, name, None)
    return json_response({"name": name, "ready": ok}, 200 if ok else 503)


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    summary="Is the version loaded?",
    responses={200: _READY, 503: _NOT_READY, **errors(400, 404)},
)
async def version_ready(name: str, version: str, request: Request) -> Response:
    """200 when ready, 503 while loading, 404 for a version that does not exist."""
    ok = await _ready(request, name, version)
    return json_response({"name": name, "version": version, "ready": ok}, 200 if ok else 503)


async def _infer(name: str, version: str | None, request: Request) -> Response:
    settings = request.app.state.settings
    reply = await infer_reply(
        _engine(request),
        name,
        version,
        await request.body(),
        request.headers,
        settings.max_request_bytes,
    )
    return Response(reply.body, reply.status, reply.headers, reply.media_type)


_INFERENCE = {200: answer(INFER_RESPONSE), **errors(*INFERENCE_ERRORS)}


@router.post(
    "/v2/models/{name}/infer",
    summary="Inference",
    openapi_extra=INFER_BODY,
    responses=_INFERENCE,
)
async def infer(name: str, request: Request) -> Response:
    """Run the model on the inputs; JSON, or binary tensors with Inference-Header-Content-Length."""
    return await _infer(name, None, request)


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    summary="Inference on a version",
    openapi_extra=INFER_BODY,
    responses=_INFERENCE,
)
async def infer_version(name: str, version: str, request: Request) -> Response:
    """``version`` is a number or an alias name (``production``, ``staging``...)."""
    return await _infer(name, version, request)


async def _index(request: Request) -> Response:
    ready_only = False
    body = await request.body() if request.method == "POST" else b""
    if body.strip():
        limit = request.app.state.settings.max_request_bytes
        payload = json_object(body, request.headers, limit)
        ready = payload.get("ready", False) if isinstance(payload, dict) else False
        if not isinstance(ready, bool):  # the text "false" would read as true
            raise BadRequest(f'"ready" must be true or false, not {quoted(ready)}')
        ready_only = ready
    entries = await _engine(request).repository_index(ready_only)
    return json_response(
        [
            {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
            for e in entries
        ]
    )


@router.get(
    "/v2/repository/index",
    summary="Models in the registry",
    tags=["Repository"],
    responses={200: _INDEX},
)
async def index_get(request: Request) -> Response:
    return await _index(request)


@router.post(
    "/v2/repository/index",
    summary="Models in the registry",
    tags=["Repository"],
    responses={200: _INDEX, **errors(400, 413)},
)
async def index_post(request: Request) -> Response:
    return await _index(request)


@router.post(
    "/v2/repository/models/{name}/load",
    summary="Serve a model",
    tags=["Repository"],
    responses={200: answer({"type": "object"}), **errors(404)},
)
async def load(name: str, request: Request) -> Response:
    await _engine(request).load_model(name)
    return json_response({})


@router.post(
    "/v2/repository/models/{name}/unload",
    summary="Stop serving",
    tags=["Repository"],
    responses={200: answer({"type": "object"}), **errors(404)},
)
async def unload(name: str, request: Request) -> Response:
    await _engine(request).unload_model(name)
    return json_response({})
