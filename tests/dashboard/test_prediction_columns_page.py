"""The prediction card of a regressor of several targets, in headless Chromium: each column's
mean and variance, not the first column's under the name of the whole prediction."""

from __future__ import annotations

import pytest

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.predictions import ColumnSummary, PredictionSummary
from tests.dashboard.browser import text_of
from tests.dashboard.pages import PageServer, busy, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here


def several(columns: int, unwatched: int = 0) -> ModelReport:
    figures = tuple(
        ColumnSummary(f"predict[{i}]", 400, float(i), 0.5 * (i + 1)) for i in range(columns)
    )
    summary = PredictionSummary("regression", 400, None, None, None, None, None, figures, unwatched)
    return ModelReport("targets", "1", 40, 400, None, summary, None, [])


def test_each_column_has_its_mean_and_variance(page_server: PageServer) -> None:
    dom, page = page_server.draw(payload(busy(), several(3)))
    assert text_of(dom, "pred-kind") == "regression · 3 values a row"
    assert text_of(dom, "pred-summary") == (
        "400 predictions in the window · predict[0] mean 0 · variance 0.500; "
        "predict[1] mean 1.00 · variance 1.00; predict[2] mean 2.00 · variance 1.50"
    )
    assert "each column" in page.by_id["chart-predictions"]["data-message"]


def test_a_wide_output_names_its_first_columns_and_what_is_left(
    page_server: PageServer,
) -> None:
    dom, _ = page_server.draw(payload(busy(), several(32, unwatched=8)))
    assert text_of(dom, "pred-kind") == "regression · 40 values a row"
    said = text_of(dom, "pred-summary")
    assert said.count("predict[") == 6
    assert said.endswith(
        "26 more columns in /api/monitoring; 8 columns past the first 32 unwatched"
    )
