"""A model whose input drift is not watched says why on the dashboard: "No reference profile"
for a model that declares text inputs, registered with a reference (tester "zoo" F3), sent
its operator to register it again with ``--reference``, which changes nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.dashboard.browser import Elements, text_of
from tests.dashboard.pages import PageServer, busy, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here

DECLARES = "the model declares inputs of its own (word, n), and drift is watched on one table"


def py_text(**changes: Any) -> dict[str, Any]:
    """``/api/dashboard``'s entry for tester "zoo"'s ``py_text`` (a ``.py`` model with a
    BYTES and an FP64 input, registered with a reference) after 40 requests, as a server
    answered it: no drift report, its predictions binned on the reference's."""
    entry: dict[str, Any] = {
        "name": "py_text",
        "version": "1",
        "requests": 40,
        "rows": 400,
        "drift": None,
        "predictions": {
            "kind": "regression",
            "count": 400,
            "mean": 10.1725,
            "variance": 20.14,
            "drift": 0.0624,
            "histogram": {
                "edges": [4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 18.0, 18.0],
                "counts": [46, 39, 44, 39, 51, 83, 52, 46],
                "below": [0.0],
                "above": [0.0],
                "missing": [0.0],
            },
        },
        "performance": None,
        "concept_drift": False,
        "serving": True,
    }
    return {**entry, **changes}


def drawn(page_server: PageServer, model: dict[str, Any]) -> tuple[str, Elements]:
    data = payload(busy())
    data["models"] = [model]
    return page_server.draw(data)


def row_text(dom: str) -> str:
    found = re.search(r'id="drift-table".*?<td[^>]*class="empty"[^>]*>([^<]*)<', dom, re.S)
    assert found, "no empty row in the drift table"
    return found[1]


def test_the_servers_reason_is_shown(page_server: PageServer) -> None:
    dom, page = drawn(page_server, py_text(drift_unwatched=DECLARES))
    assert text_of(dom, "drift-badge") == "not watched"
    assert page.by_id["drift-badge"]["title"] == DECLARES
    assert page.by_id["chart-drift"]["data-message"] == "Input drift not watched for this model"
    assert row_text(dom) == "Input drift not watched for this model."
    assert text_of(dom, "drift-foot") == f"T{DECLARES[1:]}."
    assert "no reference" not in dom.lower()


def test_predictions_watched_on_a_reference_say_there_is_one(page_server: PageServer) -> None:
    """From a server that gives no reason: its predictions were binned on the reference."""
    dom, _ = drawn(page_server, py_text())
    assert text_of(dom, "drift-badge") == "not watched"
    assert "has a reference profile" in text_of(dom, "drift-foot")
    assert "no reference" not in dom.lower()


def test_a_model_without_a_reference_still_says_so(page_server: PageServer) -> None:
    predictions = {**py_text()["predictions"], "drift": None, "histogram": None}
    dom, page = drawn(page_server, py_text(predictions=predictions))
    assert text_of(dom, "drift-badge") == "no reference profile"
    assert page.by_id["chart-drift"]["data-message"] == "No reference profile for this model"
