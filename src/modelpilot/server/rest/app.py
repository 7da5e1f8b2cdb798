"""The FastAPI application: routes, error mapping and limits around one engine."""

from __future__ import annotations

from fastapi import FastAPI

import modelpilot
from modelpilot import dashboard
from modelpilot.config import Settings
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.server.rest import api, metrics, predict, triton, v2
from modelpilot.server.rest.compression import ApiCompression
from modelpilot.server.rest.errors import install_error_handlers
from modelpilot.server.rest.fastpath import InferenceFastPath
from modelpilot.server.rest.head import HeadAsGet
from modelpilot.server.rest.limits import BodyLimit
from modelpilot.server.rest.openapi import tidy
from modelpilot.serving.engine import InferenceEngine


def create_app(
    engine: InferenceEngine,
    settings: Settings,
    monitoring: ProcessMonitoring | None = None,
) -> InferenceFastPath:
    """The REST app over ``engine``; whoever runs it starts and stops the engine, and cuts off
    the requests still running at the end of its shutdown grace (``cut_off``).

    ``monitoring`` backs ``GET /metrics``, ``/api/...`` and the dashboard; without it they
    answer 404 (whoever runs the app starts and stops it, too).
    """
    return InferenceFastPath(create_api(engine, settings, monitoring), engine, settings)


def create_api(
    engine: InferenceEngine,
    settings: Settings,
    monitoring: ProcessMonitoring | None = None,
) -> FastAPI:
    """The FastAPI application alone: every route, the OpenAPI docs, no fast path."""
    app = FastAPI(
        title="ModelPilot",
        version=modelpilot.__version__,
        description="Model serving over the Open Inference Protocol v2.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.monitoring = monitoring
    install_error_handlers(app)
    app.add_middleware(ApiCompression)  # innermost: HEAD gets the compressed answer's headers
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, engine=engine)
    app.add_middleware(HeadAsGet)
    app.include_router(triton.router)  # first: /v2/models/stats is not a model's metadata
    app.include_router(v2.router)
    app.include_router(predict.router)
    app.include_router(metrics.router)
    app.include_router(api.router)
    app.include_router(dashboard.router)
    tidy(app)
    return app
