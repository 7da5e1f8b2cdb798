"""``GET /metrics``: this process's metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelpilot.errors import NotFound
from modelpilot.server.rest.openapi import errors

router = APIRouter(tags=["Monitoring"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "The Prometheus text format."}, **errors(404)},
)
async def metrics(request: Request) -> Response:
    monitoring = request.app.state.monitoring
    if monitoring is None:
        raise NotFound("metrics are not collected by this app (it was built without monitoring)")
    return Response(generate_latest(monitoring.registry), media_type=CONTENT_TYPE_LATEST)
