"""The page in headless Chromium: one option a version, the p-value that decided, a verdict
badge that agrees with the alerts, charts described to screen readers, and stale figures."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.overview import model_overview
from tests.dashboard.browser import Elements, text_of
from tests.dashboard.pages import (
    NOW,
    WIDTH,
    PageServer,
    busy,
    feature,
    iris,
    page_server,
    payload,
)

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here

ALPHA = 0.01 / 6


def versions(serving: str, name: str = "iris") -> dict[str, Any]:
    """``name`` v1 with five requests and v2 with one, ``serving`` the one that serves."""
    page = payload(busy())
    page["models"] = [
        {
            **model_overview(ModelReport(name, v, n, n, None, None, None, [])),
            "serving": v == serving,
        }
        for v, n in (("1", 5), ("2", 1))
    ]
    return page


def options(dom: str) -> list[tuple[str, str]]:
    """The model picker's options: (value, text)."""
    return re.findall(r'<option value="([^"]*)">([^<]*)</option>', dom)


def test_each_version_is_an_option_and_the_serving_one_is_shown(page_server: PageServer) -> None:
    # After `modelpilot alias iris production 2`: both versions listed, told apart, and the
    # one that serves shown (not the first), with its own figures.
    dom, page = page_server.draw(versions(serving="2"))
    assert options(dom) == [("iris:2", "iris v2 · serving"), ("iris:1", "iris v1")]
    assert page.by_id["model-select"]["data-value"] == "iris:2"
    assert text_of(dom, "model-title") == "iris v2 · 1 request since start"

    # The alias moved back: the page follows it, as the user picked no version.
    dom, page = page_server.draw(versions(serving="1"))
    assert page.by_id["model-select"]["data-value"] == "iris:1"
    assert text_of(dom, "model-title") == "iris v1 · 5 requests since start"


@pytest.mark.parametrize(("fragment", "shown"), [("#model=iris:1", "1"), ("#model=iris", "2")])
def test_a_version_picked_stays_picked_across_refreshes(
    page_server: PageServer, fragment: str, shown: str
) -> None:
    # A pick (the picker writes it to the address) holds through the refreshes of the page's
    # five seconds: v1 stays v1 while v2 serves; a pick of the model alone follows the alias.
    dom, page = page_server.draw(versions(serving="2"), fragment=fragment)
    assert page.by_id["model-select"]["data-value"] == f"iris:{shown}"
    assert text_of(dom, "model-title").startswith(f"iris v{shown} · ")


def test_the_p_shown_is_the_one_that_decided(page_server: PageServer) -> None:
    # The missing-share test decided (p = 5.4e-46): the KS test's 0.389 is not the verdict's.
    features = [
        feature("sepal_length", "missing", 1.0, 1 - ALPHA, p_value=0.389, missing_p_value=5.4e-46),
        feature("sepal_width", "ks", 0.5, 1 - ALPHA, p_value=0.5),
        feature("petal_length", "ks", 0.5, 1 - ALPHA, p_value=0.5),
    ]
    dom, _ = page_server.draw(payload(busy(), iris(features=features)))
    cells = re.findall(r'<td class="num">([^<]*)</td>', dom)
    assert "5.4e-46" in cells and "0.389" not in cells


def test_one_drifted_feature_is_amber_not_all_clear(page_server: PageServer) -> None:
    # The data_drift alert fires on any drifted feature; dataset drift needs half of them.
    features = [
        feature("sepal_length", "ks", 1 - 1e-9, 1 - ALPHA, p_value=1e-9),
        feature("sepal_width", "ks", 0.5, 1 - ALPHA, p_value=0.5),
        feature("petal_length", "ks", 0.5, 1 - ALPHA, p_value=0.5),
    ]
    report = iris(features=features)
    page = payload(busy(), report)
    page["models"][0]["drift"]["dataset_share"] = 0.5
    dom, elements = page_server.draw(page)
    assert text_of(dom, "drift-badge") == "1 of 3 features drifted"
    assert "badge-warn" in elements.classes("drift-badge")
    assert "dataset drift from 50 % of features" in elements.by_id["drift-badge"]["title"]

    assert report.drift is not None
    drifted = replace(report, drift=replace(report.drift, dataset_drift=True))
    dom, elements = page_server.draw(payload(busy(), drifted))
    assert text_of(dom, "drift-badge") == "dataset drift"
    assert "badge-bad" in elements.classes("drift-badge")


def test_charts_are_images_described_with_their_latest_figures(page_server: PageServer) -> None:
    dom, page = page_server.draw(payload(busy(), iris()))
    assert re.search(r"<h1[^>]*>ModelPilot</h1>", dom)
    canvases = re.findall(r"<canvas[^>]*>", dom)
    assert len(canvases) == 7
    for canvas in canvases:
        chart = Elements(canvas).by_id
        (attributes,) = chart.values()
        assert attributes.get("role") == "img" and attributes.get("aria-label"), canvas
    label = page.by_id["chart-throughput"]["aria-label"]
    assert label.endswith(": latest 10.0 requests per second"), label
    assert page.by_id["chart-drift"]["aria-label"].endswith(": No reference profile for this model")


def test_one_of_a_thing_is_singular(page_server: PageServer) -> None:
    one = ModelReport("iris", "1", 1, 1, None, None, None, [])
    features = [feature("sepal_length", "none", 0.0, 0.0)]
    dom, _ = page_server.draw(payload(busy(), one))
    assert text_of(dom, "model-title") == "iris v1 · 1 request since start"
    dom, _ = page_server.draw(payload(busy(), iris(features=features, rows=1)))
    assert text_of(dom, "drift-window") == "window 1 row"


def test_figures_are_marked_stale_while_the_server_does_not_answer(
    page_server: PageServer,
) -> None:
    dom, page = page_server.draw(payload(busy(), iris()), answers=1)
    assert page.body["data-connected"] == "false"
    clock = re.fullmatch(r"disconnected · figures from (\d\d:\d\d:\d\d)", text_of(dom, "conn"))
    assert clock and clock[1] == text_of(dom, "stat-updated")
    assert page.body["data-updated"] == str(int(NOW))  # the last payload's figures stay


def test_a_long_feature_name_leaves_every_column_in_the_card(page_server: PageServer) -> None:
    # A 311-character name (a one-hot or feature-store column) made the table 2,741 px wide
    # in its 617 px card: every column but the feature's was out of sight, on every row.
    long = "L" * 300 + "<b>bold</b>"
    features = [
        feature(long, "ks", 1 - 1e-9, 1 - ALPHA, p_value=1e-9),
        feature("plain", "ks", 0.5, 1 - ALPHA, p_value=0.5),
    ]
    wrap = "document.querySelector('.table-wrap')"
    cell = "document.querySelector('#drift-table tbody td:first-child')"
    laid = page_server.measure(
        payload(busy(), iris(features=features)),
        {
            "overflow": f"{wrap}.scrollWidth - {wrap}.clientWidth",
            "status_right": "document.querySelector('#drift-table tbody td:last-child')"
            ".getBoundingClientRect().right",
            "card_right": f"{wrap}.getBoundingClientRect().right",
            "tooltip": f"{cell}.title",
            "text": f"{cell}.textContent",
        },
    )
    assert laid["overflow"] == 0
    assert laid["status_right"] <= laid["card_right"]
    assert laid["tooltip"] == laid["text"] == long  # cut short on screen, whole in its tooltip


@pytest.mark.parametrize("width", [WIDTH, 390])
def test_a_long_model_name_does_not_widen_the_page(page_server: PageServer, width: int) -> None:
    # Model names may have 128 characters: one made the page 2,400 px wide, on a phone too.
    name = "m" + "x" * 120 + ".long-"
    laid = page_server.measure(
        versions(serving="2", name=name),
        {
            "page": "document.documentElement.scrollWidth",
            "window": "document.documentElement.clientWidth",
            "title": "document.getElementById('model-title').textContent",
        },
        width=width,
    )
    assert laid["title"] == f"{name} v2 · 1 request since start"
    assert laid["page"] <= laid["window"]


@pytest.mark.parametrize(
    ("fragment", "asked", "known"),
    [("#model=nope", "nope", ""), ("#model=iris:9", "iris v9", " (of iris, it has v1, v2)")],
)
def test_a_link_to_a_model_or_version_not_there_says_so(
    page_server: PageServer, fragment: str, asked: str, known: str
) -> None:
    # A link shared in an incident ("#model=fraud:7") showed another model's healthy figures,
    # under an address that still named the one asked for, without a word.
    dom, page = page_server.draw(versions(serving="2"), fragment=fragment)
    assert text_of(dom, "model-title") == "iris v2 · 1 request since start"
    assert "hidden" not in page.by_id["model-notice"]
    assert page.by_id["model-notice"]["role"] == "status"
    assert text_of(dom, "model-notice") == (
        f"The link asks for {asked}: this server does not serve it and has no figures of it"
        f"{known}. Showing iris v2 instead."
    )
    # A link to a version that is there: shown, and nothing to say.
    dom, page = page_server.draw(versions(serving="2"), fragment="#model=iris:1")
    assert text_of(dom, "model-title") == "iris v1 · 5 requests since start"
    assert "hidden" in page.by_id["model-notice"]


def drift_rows(dom: str) -> dict[str, list[str]]:
    """The Drift details table's rows by feature: the text of each cell after the name."""
    body = re.search(r'id="drift-table".*?<tbody>(.*?)</tbody>', dom, re.S)
    assert body, "no drift table"
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body[1], re.S):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def test_a_score_and_its_threshold_can_be_told_apart(page_server: PageServer) -> None:
    # 200 features: a test's level is 0.01 / 400 = 2.5e-5, and 1 - p against 1 - alpha read
    # "1.000 | 1.000" for a drifted feature and for one that was not. An effect size of 1 read
    # "1.00" beside thresholds' "1.000", and one just short of its threshold "0.200 | 0.200".
    alpha = 0.01 / 400
    features = [
        feature("drifted", "ks", 1 - 1.2e-15, 1 - alpha, p_value=1.2e-15),
        feature("within", "ks", 1 - 3e-4, 1 - alpha, p_value=3e-4),
        feature("whole", "psi", 1.0, 0.2),
        feature("short", "psi", 0.19995, 0.2),
    ]
    dom, _ = page_server.draw(payload(busy(), iris(features=features)))
    rows = drift_rows(dom)
    score_threshold_p_status = {name: [*cells[1:4], cells[-1]] for name, cells in rows.items()}
    assert score_threshold_p_status == {
        "drifted": ["p 1.2e-15", "\u03b1 2.5e-5", "1.2e-15", "drifted"],
        "within": ["p 3.0e-4", "\u03b1 2.5e-5", "3.0e-4", "ok"],
        "whole": ["1.000", "0.200", "\u2014", "drifted"],
        "short": ["0.1999", "0.2000", "\u2014", "ok"],
    }


def test_a_p_and_a_level_past_a_thousandth_keep_their_digits(page_server: PageServer) -> None:
    # p = 0.0012 against alpha = 0.00125 read "0.001" against "0.001" in three decimals.
    alpha = 0.01 / 8
    features = [feature("a", "ks", 1 - 0.0012, 1 - alpha, p_value=0.0012)]
    dom, _ = page_server.draw(payload(busy(), iris(features=features)))
    assert drift_rows(dom)["a"][1:4] == ["p 0.0012", "\u03b1 0.00125", "0.0012"]


def test_the_page_says_the_server_is_not_ready_while_it_drains(page_server: PageServer) -> None:
    # For the drain after SIGTERM /v2/health/ready answers 503 while /api/dashboard still
    # answers: the badge said "live", when the balancers had stopped sending traffic.
    dom, page = page_server.draw(payload(busy(), iris()), ready=False)
    assert text_of(dom, "conn") == "live \u00b7 not ready"
    assert "badge-warn" in page.classes("conn")
    assert "shutting down" in page.by_id["conn"]["title"]
    assert page.body["data-connected"] == "true"  # live figures: not greyed out
    dom, page = page_server.draw(payload(busy(), iris()))
    assert text_of(dom, "conn") == "live"
    assert "badge-ok" in page.classes("conn")
