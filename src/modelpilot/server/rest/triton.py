"""Triton's extensions to the protocol over HTTP that its tools need: model configuration."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from modelpilot.protocol.model_config import model_config
from modelpilot.server.rest.openapi import answer, errors
from modelpilot.serving.engine import InferenceEngine

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
    engine: InferenceEngine = request.app.state.engine
    meta = await engine.metadata(name, version)
    config: dict[str, Any] = model_config(
        meta.name,
        meta.platform,
        meta.inputs,
        meta.outputs,
        meta.batching.max_batch_size,
        meta.batching.max_latency,
    )
    return Response(orjson.dumps(config), media_type="application/json")


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
