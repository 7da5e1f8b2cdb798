"""The dashboard page drawing fixed ``/api/dashboard`` payloads, in headless Chromium.

The payloads are built by the functions that build the real one (``service_point``,
``model_overview``) from the monitor's own report types, so they have its shape; the page is
served by the dashboard's own routes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from modelpilot.dashboard import router
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift, summarize
from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.overview import model_overview, service_point
from modelpilot.monitoring.performance import PerformanceReport
from tests.conftest import free_port
from tests.dashboard.browser import Elements, dump_dom, text_of

pytestmark = pytest.mark.slow

NOW = 1_800_000_000.0
INTERVAL = 2.0


class PageServer:
    """The dashboard's routes, and an ``/api/dashboard`` that answers ``payload``."""

    def __init__(self) -> None:
        self.payload: dict[str, Any] = {}
        app = FastAPI()
        app.include_router(router)
        app.add_api_route("/api/dashboard", self._answer, methods=["GET"])
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _answer(self) -> dict[str, Any]:
        return self.payload

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

    def draw(self, payload: dict[str, Any]) -> tuple[str, Elements]:
        """The page's DOM once it has drawn ``payload``."""
        self.payload = payload
        dom = dump_dom(f"{self.url}/dashboard", budget_ms=3000)
        page = Elements(dom)
        assert page.body.get("data-updated") == str(int(NOW)), "the page never drew a payload"
        return dom, page


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


def feature(name: str, method: str, score: float, threshold: float) -> FeatureDrift:
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
        p_value=1 - score if method == "ks" else None,
        missing_share=0.0,
        reference_missing_share=0.0,
    )


@pytest.mark.parametrize(("server_errors", "client_errors"), [(0, 6), (2, 4)])
def test_the_errors_tile_is_the_servers_errors_with_the_clients_beside_them(
    page_server: PageServer, server_errors: int, client_errors: int
) -> None:
    # The error-rate alert counts 5xx only: so does the tile, red for them alone.
    last = interval(NOW, 20, client_errors=client_errors, server_errors=server_errors)
    dom, page = page_server.draw(payload([*busy(), last]))
    assert float(page.by_id["stat-errors"]["data-value"]) == server_errors / INTERVAL
    assert ("bad" in page.classes("stat-errors")) == (server_errors > 0)
    assert float(page.by_id["stat-errors-sub"]["data-value"]) == client_errors / INTERVAL
    assert text_of(dom, "stat-errors-sub") == f"5xx · 4xx {client_errors / INTERVAL:.2f} /s"
    assert page.by_id["chart-errors"]["data-segments"] == "1|1"  # a line for each


def test_intervals_without_requests_have_no_latency(page_server: PageServer) -> None:
    idle = [interval(p.t, 0) for p in busy(8)]
    series = [*busy(8)[:3], *idle[3:5], *busy(8)[5:7], idle[7]]
    dom, page = page_server.draw(payload(series))
    assert [p["p99_ms"] for p in payload(series)["series"]] == [12.0] * 3 + [None] * 2 + [
        12.0
    ] * 2 + [None]
    assert text_of(dom, "stat-p99") == "—"
    assert text_of(dom, "stat-p50-p95") == "no requests"
    # p50, p95, p99: each a line broken where there were no requests, not dropping to 0.
    assert page.by_id["chart-latency"]["data-segments"] == "2|2|2"
    assert min(page.ticks("latency")) >= 0
    assert page.by_id["chart-throughput"]["data-segments"] == "1"  # 0 req/s is a value


@pytest.mark.parametrize(
    ("accuracy", "degraded"),
    [
        (0.88, False),  # 0.09 below the reference: within the 0.1 the server allows
        (0.85, True),
    ],
)
def test_the_accuracy_tile_is_red_when_the_server_judges_it_degraded(
    page_server: PageServer, accuracy: float, degraded: bool
) -> None:
    performance = PerformanceReport(
        labels=200,
        current={"accuracy": accuracy, "f1": accuracy},
        reference={"accuracy": 0.97, "f1": 0.97},
        degraded=["accuracy", "f1"] if degraded else [],
        label_shift=None,
        concept_drift=degraded,
        reason="accuracy fell" if degraded else "",
    )
    history = [{"t": NOW - 10 + i, "accuracy": a} for i, a in enumerate([1.0, 0.96, accuracy])]
    dom, page = page_server.draw(payload(busy(), iris(performance, history)))
    assert float(page.by_id["stat-accuracy"]["data-value"]) == accuracy
    assert ("bad" in page.classes("stat-accuracy")) == degraded
    assert text_of(dom, "concept-badge") == ("concept drift" if degraded else "no concept drift")
    assert max(page.ticks("accuracy")) <= 1  # a score ends at 1


def test_the_drift_axis_ends_at_one_for_scores_that_do(page_server: PageServer) -> None:
    threshold = 1 - 0.01 / 8
    features = [
        feature("sepal_length", "ks", 0.9999, threshold),
        feature("sepal_width", "ks", 0.2, threshold),
        feature("petal_length", "js", 0.05, 0.1),
        feature("petal_width", "missing", 0.5, threshold),
    ]
    _, page = page_server.draw(payload(busy(), iris(features=features)))
    assert max(page.ticks("drift")) == 1
    assert page.by_id["chart-drift"]["data-values"] == "0.9999|0.2|0.05|0.5"


def test_the_drift_axis_reaches_past_one_for_psi(page_server: PageServer) -> None:
    features = [feature("sepal_length", "psi", 2.5, 0.2), feature("sepal_width", "psi", 0.1, 0.2)]
    _, page = page_server.draw(payload(busy(), iris(features=features, rows=2000)))
    assert max(page.ticks("drift")) >= 2.5


def test_a_feature_without_a_verdict_has_no_bar_and_no_ok(page_server: PageServer) -> None:
    threshold = 1 - 0.01 / 4
    features = [
        feature("sepal_length", "ks", 0.9999, threshold),
        feature("sepal_width", "none", 0.0, 0.0),
    ]
    dom, page = page_server.draw(payload(busy(), iris(features=features)))
    assert page.by_id["chart-drift"]["data-values"] == "0.9999|"
    assert page.pills == [("bad", "drifted"), ("muted", "no verdict")]
    assert text_of(dom, "stat-drifted") == "1 / 1"
    assert "badge-bad" in page.classes("drift-badge")  # the one feature judged drifted


def test_a_window_too_small_for_a_verdict_is_not_green(page_server: PageServer) -> None:
    features = [feature(name, "none", 0.0, 0.0) for name in ("sepal_length", "sepal_width")]
    dom, page = page_server.draw(payload(busy(), iris(features=features, rows=12)))
    assert text_of(dom, "drift-badge") == "no verdict yet"
    assert "badge-muted" in page.classes("drift-badge")
    verdict = "too few rows for a verdict: 12 of the 30 needed"
    assert page.by_id["drift-badge"]["title"] == verdict
    assert text_of(dom, "drift-foot") == f"window 12 rows · {verdict}"
    assert page.by_id["chart-drift"]["data-message"] == verdict.capitalize()
    assert text_of(dom, "stat-drifted") == "—"
    assert page.pills == [("muted", "no verdict")] * 2
