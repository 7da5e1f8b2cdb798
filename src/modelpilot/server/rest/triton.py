"""Triton's extensions to the protocol over HTTP that its tools need: model configuration and
statistics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from modelpilot.server.rest.body import json_response
from modelpilot.server.rest.openapi import answer, errors
from modelpilot.server.triton_extensions import configuration, statistics

router = APIRouter(tags=["Triton extensions"])

_TENSOR_CONFIG = {
    "type": "object",
    "required": ["name", "data_type", "dims"],
    "properties": {
        "name": {"type": "string"},
        "data_type": {"type": "string", "example": "TYPE_FP64"},
        "dims": {"type": "array", "items": {"type": "integer"}},
        "reshape": {"type": "object"},
    },
}
MODEL_CONFIG = {
    "type": "object",
    "required": ["name", "backend", "max_batch_size", "input", "output"],
    "properties": {
        "name": {"type": "string"},
        "platform": {"type": "string"},
        "backend": {"type": "string", "description": "The flavor: sklearn, onnx..."},
        "max_batch_size": {"type": "integer", "minimum": 0},
        "input": {"type": "array", "items": _TENSOR_CONFIG},
        "output": {"type": "array", "items": _TENSOR_CONFIG},
        "dynamic_batching": {"type": "object"},
    },
}


async def _config(request: Request, name: str, version: str | None) -> Response:
    config = await configuration(request.app.state.engine, name, version)
    return json_response(config)


@router.get(
    "/v2/models/{name}/config",
    summary="Model configuration, as Triton's tools read it",
    responses={200: answer(MODEL_CONFIG), **errors(404)},
)
async def config(name: str, request: Request) -> Response:
    """What Triton's configuration of this model would say: the largest batch, and each
    tensor's type and dimensions (without the batch dimension when the model batches)."""
    return await _config(request, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/config",
    summary="Model version configuration, as Triton's tools read it",
    responses={200: answer(MODEL_CONFIG), **errors(400, 404)},
)
async def version_config(name: str, version: str, request: Request) -> Response:
    return await _config(request, name, version)


_DURATION = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}},
}
STATISTICS = {
    "type": "object",
    "required": ["model_stats"],
    "properties": {
        "model_stats": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "version", "inference_count", "execution_count"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "last_inference": {"type": "integer", "description": "Unix time, ms."},
                    "inference_count": {"type": "integer", "description": "Rows."},
                    "execution_count": {"type": "integer", "description": "Model calls."},
                    "inference_stats": {"type": "object", "additionalProperties": _DURATION},
                    "batch_stats": {"type": "array"},
                },
            },
        }
    },
}


async def _stats(request: Request, name: str | None, version: str | None) -> Response:
    state = request.app.state
    found = await statistics(state.engine, state.monitoring, name, version)
    return json_response({"model_stats": found})


@router.get(
    "/v2/models/stats",
    summary="Statistics of every version served",
    responses={200: answer(STATISTICS), **errors(404)},
)
async def all_stats(request: Request) -> Response:
    """Requests (succeeded, failed), rows, model calls, and the time spent queued and in
    the model, per version since the server started (Triton's statistics extension)."""
    return await _stats(request, None, None)


@router.get(
    "/v2/models/{name}/stats",
    summary="Statistics of a model's versions",
    responses={200: answer(STATISTICS), **errors(404)},
)
async def model_stats(name: str, request: Request) -> Response:
    return await _stats(request, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/stats",
    summary="Statistics of a model version",
    responses={200: answer(STATISTICS), **errors(400, 404)},
)
async def version_stats(name: str, version: str, request: Request) -> Response:
    return await _stats(request, name, version)
