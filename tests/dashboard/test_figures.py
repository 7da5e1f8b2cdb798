"""Figures of every magnitude read on the page: a regressor of targets near 1e-6 read 0.000 in
every card, bin, axis and reference line (tester "regression" F4), and 2 of 500 features
drifted read a share of "0 %" (tester "scale" F6)."""

from __future__ import annotations

import re

import pytest

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.performance import PerformanceReport
from modelpilot.monitoring.predictions import PredictionSummary
from tests.dashboard.browser import text_of
from tests.dashboard.pages import NOW, PageServer, busy, feature, iris, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here

DASH = "\u2013"


def tiny() -> ModelReport:
    """Tester "regression"'s ``tiny`` (a LinearRegression on targets times 1e-6) after 190
    requests, 40 of them labelled far off: its figures as /api/monitoring had them."""
    performance = PerformanceReport(
        labels=340,
        current={"mae": 2.219e-05, "rmse": 4.1e-05},
        reference={"mae": 3.732e-07, "rmse": 4.7e-07},
        degraded=["mae", "rmse"],
        label_shift=None,
        concept_drift=True,
        reason="mae 2.219e-05 against 3.732e-07",
    )
    history = [
        {"t": NOW - 6 + 2 * i, "mae": m, "rmse": m} for i, m in enumerate([4e-7, 1e-5, 2.2e-5])
    ]
    edges = [-1.2e-05 + 4e-06 * i for i in range(7)]
    histogram = {
        "edges": edges,
        "counts": [10.0, 30.0, 50.0, 50.0, 30.0, 20.0],
        "below": [0.0],
        "above": [0.0],
        "missing": [0.0],
    }
    predictions = PredictionSummary("regression", 190, None, histogram, 6.1e-07, 3.3e-11, None)
    return ModelReport("tiny", "1", 190, 190, None, predictions, performance, history)


def test_a_regressor_of_small_targets_reads_its_figures(page_server: PageServer) -> None:
    dom, page = page_server.draw(payload(busy(), tiny()))
    assert text_of(dom, "stat-accuracy") == "2.22e-5"
    assert text_of(dom, "stat-accuracy-sub") == "ref 3.73e-7 · 340 labels"
    assert text_of(dom, "perf-summary") == "340 labels · mae 2.22e-5 · rmse 4.10e-5"
    # The MAE axis: ticks that differ, and say the figures they stand at.
    ticks = page.by_id["chart-accuracy"]["data-ticks"].split("|")
    assert len(set(ticks)) == len(ticks) > 2, ticks
    assert page.ticks("accuracy")[-1] >= 2.2e-5
    assert "0.0000" not in ticks
    assert "reference 3.73e-7" in page.by_id["chart-accuracy"]["aria-label"]
    labels = page.by_id["chart-predictions"]["data-labels"].split("|")
    assert labels[0] == "< -1.20e-5" and labels[-1] == "> 1.20e-5"
    assert labels[1] == f"-1.20e-5{DASH}-8.00e-6"
    assert len(set(labels)) == len(labels)
    assert text_of(dom, "pred-summary").endswith("mean 6.10e-7 · variance 3.30e-11")
    assert not re.search(r"(?<![0-9.])-?0\.000(?![0-9])", dom), "a figure read 0.000"


def test_figures_of_ordinary_sizes_read_as_before(page_server: PageServer) -> None:
    performance = PerformanceReport(
        labels=200,
        current={"accuracy": 0.9, "f1": 0.03},
        reference={"accuracy": 0.97},
        degraded=[],
        label_shift=None,
        concept_drift=False,
        reason="",
    )
    dom, _ = page_server.draw(payload(busy(), iris(performance)))
    assert text_of(dom, "perf-summary") == "200 labels · accuracy 0.900 · f1 0.030"
    assert text_of(dom, "stat-accuracy-sub") == "ref 0.970 · 200 labels"


@pytest.mark.parametrize(
    ("drifted", "features", "share"),
    [(2, 500, "0.4 %"), (1, 1000, "0.1 %"), (499, 500, "99.8 %"), (1, 4, "25 %"), (0, 8, "0 %")],
)
def test_a_share_of_drifted_features_reads_none_only_when_none_drifted(
    page_server: PageServer, drifted: int, features: int, share: str
) -> None:
    alpha = 0.01 / features
    shown = [
        feature(f"f{i}", "ks", 1 - 1e-12, 1 - alpha, p_value=1e-12)
        if i < drifted
        else feature(f"f{i}", "ks", 0.5, 1 - alpha, p_value=0.5)
        for i in range(features)
    ]
    dom, _ = page_server.draw(payload(busy(), iris(features=shown, rows=2000)))
    assert text_of(dom, "stat-drifted") == f"{drifted} / {features}"
    found = re.search(r'id="stat-drift-sub"[^>]*>.*?· share ([^<]*)<', dom)
    assert found and found[1] == share, found and found[1]
