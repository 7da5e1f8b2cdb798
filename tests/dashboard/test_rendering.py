"""The dashboard page drawing fixed ``/api/dashboard`` payloads, in headless Chromium.

The payloads are built by the functions that build the real one (``service_point``,
``model_overview``) from the monitor's own report types, so they have its shape; the page is
served by the dashboard's own routes (see ``pages``).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from modelpilot.monitoring.alerts import Alert, AlertRules, AlertState
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.performance import PerformanceReport
from modelpilot.monitoring.predictions import PredictionSummary
from tests.dashboard.browser import text_of
from tests.dashboard.pages import (
    INTERVAL,
    NOW,
    PageServer,
    busy,
    feature,
    interval,
    iris,
    page_server,
    payload,
)

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here


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


def test_a_stretch_without_labels_is_a_gap_in_the_accuracy_line(page_server: PageServer) -> None:
    """The quality window held no labels for 50 s (a point with no metric): the line went
    straight from 0.5 before to 1.0 after, a recovery through a stretch of nothing."""
    performance = PerformanceReport(
        labels=40,
        current={"accuracy": 1.0},
        reference={"accuracy": 0.97},
        degraded=[],
        label_shift=None,
        concept_drift=False,
        reason="",
    )
    history = [
        {"t": NOW - 60, "accuracy": 0.5},
        {"t": NOW - 58, "accuracy": 0.5},
        {"t": NOW - 10},
        {"t": NOW - 4, "accuracy": 1.0},
        {"t": NOW - 2, "accuracy": 1.0},
    ]
    _, page = page_server.draw(payload(busy(), iris(performance, history)))
    assert page.by_id["chart-accuracy"]["data-segments"] == "2"
    assert page.by_id["chart-accuracy"]["data-points"] == "4"


def test_drift_bars_are_evidence_with_the_line_at_one_and_chance_low(
    page_server: PageServer,
) -> None:
    # 1 - p drew a healthy p = 0.2 at 80 % of the chart, beside a threshold of 0.999. On the
    # evidence scale (log p / log alpha for tests, score / threshold for effect sizes) every
    # feature drifts at 1, chance-level p-values stay low, and the bars end at 3.
    alpha = 0.01 / 8
    features = [
        feature("sepal_length", "ks", 0.8, 1 - alpha, p_value=0.2),
        feature("sepal_width", "ks", 1 - 1e-4, 1 - alpha, p_value=1e-4),
        feature("petal_length", "psi", 0.1, 0.2),
        feature("petal_width", "missing", 1.0, 1 - alpha, p_value=0.4, missing_p_value=1e-40),
    ]
    dom, page = page_server.draw(payload(busy(), iris(features=features)))
    values = [float(v) for v in page.by_id["chart-drift"]["data-values"].split("|")]
    assert values == pytest.approx(
        [math.log(0.2) / math.log(alpha), math.log(1e-4) / math.log(alpha), 0.5, 3]
    )
    assert values[0] < 0.25 and values[1] > 1  # chance stays low; drift is past the line
    assert max(page.ticks("drift")) == 3
    assert "log p / log \u03b1" in text_of(dom, "drift-foot")


def test_the_drift_axis_reaches_past_one_for_psi(page_server: PageServer) -> None:
    features = [feature("sepal_length", "psi", 2.5, 0.2), feature("sepal_width", "psi", 0.1, 0.2)]
    _, page = page_server.draw(payload(busy(), iris(features=features, rows=2000)))
    assert page.by_id["chart-drift"]["data-values"] == "3|0.5"  # 12.5 times the line: capped
    assert max(page.ticks("drift")) == 3


def test_a_feature_without_a_verdict_has_no_bar_and_no_ok(page_server: PageServer) -> None:
    threshold = 1 - 0.01 / 4
    features = [
        feature("sepal_length", "ks", 0.9999, threshold),
        feature("sepal_width", "none", 0.0, 0.0),
    ]
    dom, page = page_server.draw(payload(busy(), iris(features=features)))
    first, second = page.by_id["chart-drift"]["data-values"].split("|")
    assert float(first) > 1 and second == ""
    assert page.pills == [("bad", "drifted"), ("muted", "no verdict")]
    assert text_of(dom, "stat-drifted") == "1 / 1"
    assert "badge-bad" in page.classes("drift-badge")  # the one feature judged drifted
    assert text_of(dom, "drift-badge") == "dataset drift"


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


def test_a_model_with_traffic_and_no_labels_in_its_window_says_so(
    page_server: PageServer,
) -> None:
    # Labels that aged out of the quality window leave it as empty as labels that never came:
    # "no labels yet" told an operator with late labels that they had never arrived.
    dom, _ = page_server.draw(payload(busy(), iris(performance=None)))
    assert text_of(dom, "stat-accuracy-sub") == "no labels in the window"
    assert text_of(dom, "stat-accuracy") == "—"


def test_a_pending_alert_is_listed_after_the_firing_ones_and_not_counted(
    page_server: PageServer,
) -> None:
    """A drift rule waiting out MODELPILOT_ALERT_FOR_SECONDS is shown, with when it fires."""
    firing = Alert("error_rate", "", "critical", "9% of requests failed", 0.09, NOW - 30)
    shown = payload(busy())
    shown["alerts"] = [firing.to_dict()]
    book = AlertState(pending={("data_drift", "iris:1"): NOW - 20})
    shown["pending_alerts"] = book.waiting(AlertRules(for_seconds=50.0))
    dom, page = page_server.draw(shown)
    assert page.alerts == ["error_rate", "data_drift"]
    assert page.alert_states == ["firing", "pending"]
    assert text_of(dom, "alerts-count") == "1"
    assert "fires in 30s" in dom
    assert page.by_id["alerts-empty"].get("hidden") is not None


def test_of_many_features_the_chart_shows_those_with_the_most_evidence(
    page_server: PageServer,
) -> None:
    # 150 bars' labels overlapped into a grey band, and the table was in the profile's order:
    # a red bar could not be told from its neighbours, nor found in the table.
    alpha = 0.01 / 150
    features = [feature(f"f{i:03d}", "ks", 0.5, 1 - alpha, p_value=0.5) for i in range(150)]
    for i, p in ((7, 1e-9), (80, 1e-30), (149, 1e-12)):  # drifted, among the healthy
        features[i] = feature(f"f{i:03d}", "ks", 1 - p, 1 - alpha, p_value=p)
    features[3] = feature("f003", "ks", 0.99, 1 - alpha, p_value=0.01)  # some evidence
    dom, page = page_server.draw(payload(busy(), iris(features=features)))
    chart = page.by_id["chart-drift"]
    labels = chart["data-labels"].split("|")
    assert len(labels) == 20
    assert labels[:4] == ["f080", "f149", "f007", "f003"]  # the most evidence first
    assert "20 of 150 features shown" in text_of(dom, "drift-foot")
    rows = re.findall(r'<td class="name" title="([^"]*)">', dom)
    assert len(rows) == 150
    assert rows[:3] == ["f080", "f149", "f007"]  # drifted first, then the profile's order
    assert rows[3:6] == ["f000", "f001", "f002"]


def test_a_few_features_keep_their_places_on_the_chart(page_server: PageServer) -> None:
    alpha = 0.01 / 3
    features = [
        feature("a", "ks", 0.5, 1 - alpha, p_value=0.5),
        feature("b", "ks", 1 - 1e-9, 1 - alpha, p_value=1e-9),
        feature("c", "ks", 0.9, 1 - alpha, p_value=0.1),
    ]
    dom, page = page_server.draw(payload(busy(), iris(features=features)))
    assert page.by_id["chart-drift"]["data-labels"] == "a|b|c"
    assert "shown" not in text_of(dom, "drift-foot")


def test_a_figure_wider_than_its_bar_is_not_drawn_white_on_the_card(
    page_server: PageServer,
) -> None:
    # Past the axis's end (evidence capped at 3) the figure goes inside the bar's top, in
    # white: "p 2.3e-137" is wider than a bar of eight, and spilled white onto the white card.
    alpha = 0.01 / 8
    features = [feature(f"f{i}", "ks", 1.0, 1 - alpha, p_value=2.3e-137) for i in range(8)]
    _, page = page_server.draw(payload(busy(), iris(features=features)))
    assert page.by_id["chart-drift"]["data-inks"] == "|".join(["halo"] * 8)
    features = [feature(f"f{i}", "psi", 9.0, 0.2) for i in range(2)]  # "PSI 9.00" fits
    _, page = page_server.draw(payload(busy(), iris(features=features, rows=2000)))
    assert page.by_id["chart-drift"]["data-inks"] == "inside|inside"


def regressor(predictions: PredictionSummary) -> ModelReport:
    return ModelReport("price", "1", 6, 6, None, predictions, None, [])


def test_predictions_that_are_no_number_have_a_bar_and_are_counted(
    page_server: PageServer,
) -> None:
    # A model that answers NaN or inf: its predictions appeared nowhere on the page ("6
    # requests", "4 predictions"), though the payload counts them in the histogram's missing.
    histogram = {
        "edges": [0.0, 1.0, 2.0],
        "counts": [1.0, 1.0],
        "below": [0.0],
        "above": [2.0],
        "missing": [2.0],
    }
    summary = PredictionSummary("regression", 4, None, histogram, 1.5, 0.25, None)
    dom, page = page_server.draw(payload(busy(), regressor(summary)))
    chart = page.by_id["chart-predictions"]
    assert chart["data-labels"].split("|")[-1] == "not finite"
    assert [float(v) for v in chart["data-values"].split("|")] == [0, 1, 1, 2, 2]
    assert text_of(dom, "pred-summary") == (
        "6 predictions in the window (2 not finite; 0 below, 2 above the reference range) · "
        "mean 1.50 · variance 0.250"
    )
    # Two predictions of 1e308 overflow the window's sums: the page says so, not "mean —".
    overflowed = replace(summary, mean=None, variance=None)
    dom, _ = page_server.draw(payload(busy(), regressor(overflowed)))
    assert "mean, variance — (too large for a float" in text_of(dom, "pred-summary")


def test_classes_are_in_natural_order_without_a_mean(page_server: PageServer) -> None:
    # class_10 came before class_2, eight colours were recycled over twelve classes, and a
    # classifier's summary read "mean — · variance —".
    classes = {f"class_{i}": 10 + i for i in sorted(range(12), key=str)}
    classes["(unknown)"] = 1
    summary = PredictionSummary("classification", 187, classes, None, None, None, None)
    dom, page = page_server.draw(payload(busy(), regressor(summary)))
    labels = page.by_id["chart-predictions"]["data-labels"].split("|")
    assert labels == [f"class_{i}" for i in range(12)] + ["(unknown)"]
    assert text_of(dom, "pred-summary") == "187 predictions in the window"


def test_the_throughput_window_and_the_charts_span_are_the_servers(
    page_server: PageServer,
) -> None:
    # "last 2 s window" was written in the page; at MODELPILOT_MONITOR_INTERVAL_SECONDS=15
    # the points are 15 s apart. The charts hold the last 300 points: the page says how long.
    series = [replace(interval(NOW - 15 * (40 - i), 20), seconds=15.0) for i in range(41)]
    history = [{"t": NOW - 60 * (10 - i), "accuracy": 0.9} for i in range(11)]
    performance = PerformanceReport(
        labels=200,
        current={"accuracy": 0.9},
        reference={"accuracy": 0.9},
        degraded=[],
        label_shift=None,
        concept_drift=False,
        reason="",
    )
    dom, _ = page_server.draw(payload(series, iris(performance, history)))
    assert text_of(dom, "stat-rps-sub") == "last 15 s window"
    assert text_of(dom, "series-span") == "· charts: last 10 min"  # 41 points, 15 s each
    assert text_of(dom, "perf-title") == "Accuracy · last 11 min"


def test_after_a_restart_the_card_counts_its_window_and_the_title_the_requests_since_start(
    page_server: PageServer,
) -> None:
    # The window restored from the inference log: "5,113 predictions" under "house v1 · 113
    # requests", and nothing said which one counted what.
    histogram = {
        "edges": [0.0, 1.0, 2.0],
        "counts": [5000.0, 112.0],
        "below": [0.0],
        "above": [1.0],
        "missing": [0.0],
    }
    summary = PredictionSummary("regression", 5113, None, histogram, 1.0, 0.25, None)
    restored = ModelReport("house", "1", 113, 5113, None, summary, None, [])
    dom, page = page_server.draw(payload(busy(), restored))
    assert text_of(dom, "model-title") == "house v1 \u00b7 113 requests since start"
    assert text_of(dom, "pred-summary").startswith(
        "5,113 predictions in the window (0 below, 1 above the reference range)"
    )
    said = page.by_id["pred-summary"]["title"]
    assert "MODELPILOT_DRIFT_WINDOW_ROWS" in said and "inference log" in said


def test_alerts_that_start_or_stop_firing_are_announced_once(page_server: PageServer) -> None:
    # The alert list had no live region: an alert that started firing was not announced. The
    # list is redrawn every refresh, so what changed is said in a status region of its own.
    errors = Alert("error_rate", "", "critical", "9% of requests failed", 0.09, NOW - 30)
    drift = Alert("data_drift", "iris:1", "warning", "sepal_length drifted", 0.25, NOW - 5)
    first, then = payload(busy()), payload(busy())
    first["alerts"] = [errors.to_dict()]
    then["alerts"] = [drift.to_dict()]
    dom, page = page_server.draw(first, later=[then])
    assert page.alerts == ["data_drift"]  # the page drew the second payload
    assert page.by_id["alerts-news"]["role"] == "status"
    assert text_of(dom, "alerts-news") == (
        "Alert firing: data_drift on iris:1 (warning). Alert resolved: error_rate. 1 active alert."
    )
    # The alerts firing when the page opens are on the list, not news; so are unchanged ones.
    dom, page = page_server.draw(first)
    assert text_of(dom, "alerts-news") == ""
    assert "hidden" not in page.by_id["alerts"]
    dom, page = page_server.draw(payload(busy()))
    assert "hidden" in page.by_id["alerts"]  # nothing to scroll to in the tab order


def test_the_classes_past_the_bound_of_a_model_that_names_none_come_last(
    page_server: PageServer,
) -> None:
    # A model that names no classes counts those past the first 100 as "(other)", which
    # sorted among its classes as one of them.
    classes = {"zebra": 3, "(other)": 5, "ant": 2, "cat": 1}
    summary = PredictionSummary("classification", 11, classes, None, None, None, None)
    _, page = page_server.draw(payload(busy(), regressor(summary)))
    labels = page.by_id["chart-predictions"]["data-labels"].split("|")
    assert labels == ["ant", "cat", "zebra", "(other)"]
