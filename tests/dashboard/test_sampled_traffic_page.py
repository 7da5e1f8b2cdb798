"""With the monitor sampling (MODELPILOT_MONITOR_SAMPLE_RATE < 1) the model's title says how
many of the requests it answered were watched, and that the monitor samples: "iris v1 · 202
requests since start" of a model that had answered 401 halved its traffic on the page (tester
"settings" F2)."""

from __future__ import annotations

import pytest

from modelpilot.monitoring.overview import model_overview
from tests.dashboard.browser import text_of
from tests.dashboard.pages import PageServer, busy, iris, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here


def sampled(requests: int, rate: float, answered: int | None) -> dict[str, object]:
    data = payload(busy())
    # The fields as model_overview adds them (``requests_answered`` only when sampling).
    entry = model_overview(iris(rows=requests))
    entry.update(monitor_sample_rate=rate, requests_answered=answered)
    data["models"] = [entry]
    return data


def test_the_title_says_how_many_requests_were_watched_of_those_answered(
    page_server: PageServer,
) -> None:
    dom, page = page_server.draw(sampled(202, 0.5, 401))
    assert text_of(dom, "model-title") == (
        "iris v1 \u00b7 202 of 401 requests watched since start \u00b7 "
        "the monitor samples 50 % of calls"
    )
    assert "MODELPILOT_MONITOR_SAMPLE_RATE" in page.by_id["model-title"]["title"]


def test_a_model_watched_whole_reads_as_before(page_server: PageServer) -> None:
    dom, page = page_server.draw(sampled(5, 1.0, None))
    assert text_of(dom, "model-title") == "iris v1 \u00b7 5 requests since start"
    assert page.by_id["model-title"].get("title", "") == ""
