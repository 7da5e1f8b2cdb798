"""``POST /predict/{name}``: the simple endpoint for rows or records, no protocol needed."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from modelpilot.protocol.types import MAX_REQUEST_ID
from modelpilot.server.rest.body import documented_json_body
from modelpilot.server.rest.handlers import predict_reply
from modelpilot.server.rest.openapi import (
    ID_PATTERN,
    INFERENCE_ERRORS,
    PREDICT_RESPONSE,
    answer,
    errors,
)
from modelpilot.serving.engine import InferenceEngine

router = APIRouter(tags=["Simple prediction"])

PREDICT_BODY = documented_json_body(
    {
        "type": "object",
        "oneOf": [{"required": ["data"]}, {"required": ["instances"]}],
        "properties": {
            "data": {"type": "array", "minItems": 1, "items": {}, "description": "a row or rows"},
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "object"},
                "description": "records {feature: value}",
            },
            "id": {"type": "string", "maxLength": MAX_REQUEST_ID, "pattern": ID_PATTERN},
        },
    },
    {
        "row": {"data": [5.1, 3.5, 1.4, 0.2]},
        "rows": {"data": [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]},
    },
)


async def _predict(name: str, version: str | None, request: Request) -> Response:
    engine: InferenceEngine = request.app.state.engine
    limit = request.app.state.settings.max_request_bytes
    reply = await predict_reply(engine, name, version, await request.body(), request.headers, limit)
    return Response(reply.body, reply.status, reply.headers, reply.media_type)


_ANSWERS = {200: answer(PREDICT_RESPONSE), **errors(*INFERENCE_ERRORS)}


@router.post(
    "/predict/{name}",
    summary="Predict rows or records",
    openapi_extra=PREDICT_BODY,
    responses=_ANSWERS,
)
async def predict(name: str, request: Request) -> Response:
    """Score ``{"data": row-or-rows}`` or ``{"instances": [records]}``.

    Answers ``{"model", "version", "id", "predictions", "outputs"}``: ``predictions`` is the
    model's first output (labels for a classifier), one value per row (a column of one,
    ``[N, 1]``, as its values), ``outputs`` has every output by name, as the model gave it.
    """
    return await _predict(name, None, request)


@router.post(
    "/predict/{name}/versions/{version}",
    summary="Predict with a version",
    openapi_extra=PREDICT_BODY,
    responses=_ANSWERS,
)
async def predict_version(name: str, version: str, request: Request) -> Response:
    return await _predict(name, version, request)
