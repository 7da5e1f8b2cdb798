"""``GET /metrics``: this process's metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelpilot.errors import NotFound

router = APIRouter(tags=["Monitoring"])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    monitoring = request.app.state.monitoring
    if monitoring is None:
        raise NotFound("metrics are not collected by this app (it was built without monitoring)")
    return Response(generate_latest(monitoring.registry), media_type=CONTENT_TYPE_LATEST)
