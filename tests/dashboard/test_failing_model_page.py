"""A model that fails its requests says so in its section (tester "multimodel" F1): a model
failing every one of its requests, which the monitor never watched (it watches answers), read
"broken v1 · no traffic yet" in its title and every card."""

from __future__ import annotations

import pytest

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.overview import model_overview
from modelpilot.monitoring.version_errors import VersionTraffic
from tests.dashboard.browser import text_of
from tests.dashboard.pages import PageServer, busy, iris, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here


def with_model(report: ModelReport, traffic: VersionTraffic | None) -> dict[str, object]:
    data = payload(busy())
    entry = model_overview(report, traffic=traffic)
    entry["serving"] = True
    data["models"] = [entry]
    return data


def test_a_model_failing_every_request_reads_failing_not_idle(page_server: PageServer) -> None:
    broken = ModelReport("broken", "1", 0, 0, None, None, None, [])
    traffic = VersionTraffic(600.0, 105, 105, 60.0, 90, 90)
    dom, page = page_server.draw(with_model(broken, traffic))
    assert text_of(dom, "model-title") == (
        "broken v1 \u00b7 failing 90 of 90 requests (5xx) in the last 60 s"
    )
    assert "failing" in page.classes("model-title")
    for chart in ("drift", "predictions", "accuracy"):
        message = page.by_id[f"chart-{chart}"]["data-message"]
        assert message == "No answers: its requests failed", chart
    assert "no traffic yet" not in dom.lower()


def test_failures_that_aged_out_of_the_last_minute_are_said_over_the_charts_span(
    page_server: PageServer,
) -> None:
    broken = ModelReport("broken", "1", 0, 0, None, None, None, [])
    dom, page = page_server.draw(with_model(broken, VersionTraffic(240.0, 105, 105, 60.0, 0, 0)))
    assert text_of(dom, "model-title") == (
        "broken v1 \u00b7 failed 105 of 105 requests (5xx) in the last 4 min"
    )
    assert "failing" not in page.classes("model-title")


def test_a_model_that_answers_says_its_failures_beside_its_requests(
    page_server: PageServer,
) -> None:
    dom, page = page_server.draw(with_model(iris(rows=400), VersionTraffic(600, 500, 3, 60, 50, 3)))
    assert text_of(dom, "model-title") == (
        "iris v1 \u00b7 400 requests since start \u00b7 failing 3 of 50 requests (5xx) in the "
        "last 60 s"
    )
    healthy = with_model(iris(rows=400), VersionTraffic(600, 500, 0, 60, 50, 0))
    dom, page = page_server.draw(healthy)
    assert text_of(dom, "model-title") == "iris v1 \u00b7 400 requests since start"
    assert "failing" not in page.classes("model-title")
    idle = ModelReport("quiet", "2", 0, 0, None, None, None, [])
    dom, page = page_server.draw(with_model(idle, None))
    assert text_of(dom, "model-title") == "quiet v2 \u00b7 no traffic yet"
    assert page.by_id["chart-predictions"]["data-message"] == "No traffic yet"
