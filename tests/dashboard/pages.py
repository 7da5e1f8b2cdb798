"""A page server for the dashboard's rendering tests: the dashboard's own routes, and an
``/api/dashboard`` answering fixed payloads built by the functions that build the real one
(``service_point``, ``model_overview``) from the monitor's own report types."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse

from modelpilot.dashboard import router
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift, summarize
from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.overview import model_overview, service_point
from modelpilot.monitoring.performance import PerformanceReport
from tests.conftest import free_port
from tests.dashboard.browser import Elements, dump_dom

NOW = 1_800_000_000.0
INTERVAL = 2.0
WIDTH = 1400
"""The width ``PageServer.measure`` lays the page out at by default: the test browser's
window's."""


class PageServer:
    """The dashboard's routes, an ``/api/dashboard`` that answers ``payload`` (or each of
    ``later`` in turn, then the last of them again), and ``/v2/health/ready``."""

    def __init__(self) -> None:
        self.payload: dict[str, Any] = {}
        self.later: list[dict[str, Any]] = []
        """The payloads answered after ``payload``, one a request."""
        self.answers_left: int | None = None
        """How many more requests are answered before the server "goes down" (503)."""
        self.ready = True
        """What ``/v2/health/ready`` says: 503 when False, as during the drain after SIGTERM."""
        app = FastAPI()
        app.include_router(router)
        app.add_api_route("/api/dashboard", self._answer, methods=["GET"])
        app.add_api_route("/v2/health/ready", self._ready, methods=["GET"])
        app.add_api_route("/probe", self._probe, methods=["GET"], response_class=HTMLResponse)
        self.expressions: dict[str, str] = {}
        """What ``/probe`` evaluates in the page it frames (see ``measure``)."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _answer(self) -> dict[str, Any]:
        if self.answers_left is not None:
            if self.answers_left <= 0:
                raise HTTPException(503, "down")
            self.answers_left -= 1
        answer = self.payload
        if self.later:
            self.payload = self.later.pop(0)
        return answer

    async def _ready(self) -> JSONResponse:
        return JSONResponse({"ready": self.ready}, 200 if self.ready else 503)

    async def _probe(self, fragment: str = "", width: int = WIDTH) -> HTMLResponse:
        # The dashboard in a frame ``width`` px wide; once it has drawn,
        # each expression's value goes into #probe as JSON, for ``dump_dom`` to read.
        expressions = json.dumps(self.expressions).replace("</", "<\\/")
        return HTMLResponse(
            "<!doctype html><body style='margin:0'>"
            f"<iframe id='page' src='/dashboard{html.escape(fragment, quote=True)}' "
            f"style='border:0;width:{width}px;height:1800px'></iframe><pre id='probe'></pre>"
            "<script>const page = document.getElementById('page');"
            f"const expressions = {expressions};"
            "function probe() {"
            "  const w = page.contentWindow, d = w.document;"
            "  if (!d.body || !d.body.dataset.updated) return setTimeout(probe, 50);"
            "  const out = {};"
            "  for (const [k, e] of Object.entries(expressions)) {"
            "    try { out[k] = new w.Function('document', 'window', `return (${e});`)(d, w); }"
            "    catch (err) { out[k] = `error: ${err}`; } }"
            "  document.getElementById('probe').textContent = JSON.stringify(out);"
            "}"
            "setTimeout(probe, 50);</script></body>"
        )

    def __enter__(self) -> PageServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the page server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def draw(
        self,
        payload: dict[str, Any],
        fragment: str = "",
        answers: int | None = None,
        later: list[dict[str, Any]] | None = None,
        ready: bool = True,
    ) -> tuple[str, Elements]:
        """The page's DOM once it has drawn ``payload`` (at ``/dashboard`` + ``fragment``),
        answering ``answers`` requests (all, by default) and then 503; with ``later``, each
        of them on the page's next refreshes, one a refresh. ``ready``: what
        ``/v2/health/ready`` answers."""
        self.payload = payload
        self.later = list(later or [])
        self.answers_left = answers
        self.ready = ready
        slow = answers or later  # the refreshes are 2 s apart, in the page's virtual time
        dom = dump_dom(f"{self.url}/dashboard{fragment}", budget_ms=5000 if slow else 3000)
        page = Elements(dom)
        assert page.body.get("data-updated") == str(int(NOW)), "the page never drew a payload"
        return dom, page

    def measure(
        self,
        payload: dict[str, Any],
        expressions: dict[str, str],
        fragment: str = "",
        width: int = WIDTH,
    ) -> dict[str, Any]:
        """Each of ``expressions`` (JavaScript over the page's ``document`` and ``window``)
        evaluated once the page has drawn ``payload`` in a frame ``width`` px wide: what the
        page laid out (widths, overflow), which its DOM does not say."""
        self.payload = payload
        self.later = []
        self.answers_left = None
        self.ready = True
        self.expressions = expressions
        dom = dump_dom(f"{self.url}/probe?fragment={quote(fragment)}&width={width}", budget_ms=3000)
        found = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
        assert found and found[1], "the page never drew a payload"
        values: dict[str, Any] = json.loads(html.unescape(found[1]))
        errors = {k: v for k, v in values.items() if str(v).startswith("error: ")}
        assert not errors, errors
        return values


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


def interval(
    t: float, requests: int, client_errors: int = 0, server_errors: int = 0
) -> ServicePoint:
    latency = 0.004 if requests else 0.0  # as the history records an interval without requests
    return ServicePoint(
        t=t,
        seconds=INTERVAL,
        requests=requests,
        errors=client_errors + server_errors,
        p50=latency,
        p95=latency * 2,
        p99=latency * 3,
        cpu_percent=5.0,
        memory_bytes=200_000_000,
        server_errors=server_errors,
    )


def payload(series: list[ServicePoint], report: ModelReport | None = None) -> dict[str, Any]:
    return {
        "time": NOW,
        "uptime_seconds": 600.0,
        "series": [service_point(p) for p in series],
        "system": {
            "workers": 1,
            "cpu_percent": 5.0,
            "memory_bytes": 200_000_000,
            "process_memory_bytes": 200_000_000,
            "machine_cpu_percent": 10.0,
            "memory_percent": 30.0,
            "disk_read_bytes": None,
            "disk_write_bytes": None,
            "net_sent_bytes": None,
            "net_recv_bytes": None,
        },
        "models": [model_overview(report)] if report else [],
        "alerts": [],
    }


def busy(points: int = 5) -> list[ServicePoint]:
    return [interval(NOW - INTERVAL * (points - i), 20) for i in range(points)]


def iris(
    performance: PerformanceReport | None = None,
    history: list[dict[str, float]] | None = None,
    features: list[FeatureDrift] | None = None,
    rows: int = 400,
) -> ModelReport:
    drift = summarize(rows, features, DriftThresholds(features=len(features))) if features else None
    return ModelReport("iris", "1", rows, rows, drift, None, performance, history or [])


def feature(
    name: str,
    method: str,
    score: float,
    threshold: float,
    p_value: float | None = None,
    missing_p_value: float | None = None,
) -> FeatureDrift:
    judged = method != "none"
    return FeatureDrift(
        name=name,
        kind="numeric",
        rows=400,
        method=method,
        score=score,
        threshold=threshold,
        drifted=judged and score >= threshold,
        reason="" if judged else "too few rows for a verdict: 12 of the 30 needed",
        psi=0.1,
        js_distance=0.1,
        kl_divergence=0.1,
        wasserstein=0.5,
        p_value=p_value if p_value is not None else 1 - score if method == "ks" else None,
        missing_share=0.0,
        reference_missing_share=0.0,
        missing_p_value=missing_p_value,
    )
