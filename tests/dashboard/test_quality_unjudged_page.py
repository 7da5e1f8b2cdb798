"""The quality card is green only for a window the server judged: a version with no reference
figures (``quality_unjudged``), or a window with too few labels (``performance.judged``
false), showed a green "no concept drift" that no label could turn red (tester "regression"
F5)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.performance import PerformanceReport
from tests.dashboard.browser import text_of
from tests.dashboard.pages import NOW, PageServer, busy, page_server, payload

pytestmark = pytest.mark.slow

__all__ = ["page_server"]  # the fixture, used by the tests here

NEVER = (
    "quality not judged: the version has no reference figures to judge its labels against "
    "(register it with --reference DATA --target COLUMN, or state one with --metadata mae=12.5)"
)
FEW = "12 labels in the window, fewer than the 30 judged from"


def multi(performance: PerformanceReport, never: str = "") -> ModelReport:
    history = [{"t": NOW - 4 + 2 * i, "mae": performance.current["mae"]} for i in range(3)]
    return ModelReport(
        "multi", "1", 120, 120, None, None, performance, history, quality_unjudged=never
    )


def unjudged(labels: int, reason: str, **changes: object) -> PerformanceReport:
    report = PerformanceReport(
        labels=labels,
        current={"mae": 1.98},
        reference={},
        degraded=[],
        label_shift=None,
        concept_drift=False,
        reason=reason,
        unjudged=reason,
    )
    return replace(report, **changes)


def test_a_version_never_judged_says_so(page_server: PageServer) -> None:
    dom, page = page_server.draw(payload(busy(), multi(unjudged(120, NEVER), never=NEVER)))
    assert text_of(dom, "concept-badge") == "quality not judged"
    assert "badge-muted" in page.classes("concept-badge")
    assert page.by_id["concept-badge"]["title"] == NEVER
    assert text_of(dom, "stat-accuracy") == "1.98"  # the figure is shown, not judged
    assert text_of(dom, "stat-accuracy-sub") == "120 labels · not judged"
    assert text_of(dom, "perf-summary") == f"120 labels · mae 1.98 · {NEVER}"
    assert "no concept drift" not in dom


def test_a_window_of_too_few_labels_has_no_verdict_yet(page_server: PageServer) -> None:
    performance = unjudged(12, "", reference={"mae": 2.0}, unjudged=FEW)
    dom, page = page_server.draw(payload(busy(), multi(performance)))
    assert text_of(dom, "concept-badge") == "no verdict yet"
    assert "badge-muted" in page.classes("concept-badge")
    assert page.by_id["concept-badge"]["title"] == FEW
    assert text_of(dom, "stat-accuracy-sub") == "ref 2.00 · 12 labels · not judged"
    assert "no concept drift" not in dom


def test_a_drift_held_over_a_window_that_cannot_judge_stays_red(page_server: PageServer) -> None:
    held = f"concept drift holds until the window can judge again ({FEW}), as its alert does"
    performance = unjudged(
        12, held, reference={"mae": 0.5}, unjudged=FEW, concept_drift=True, degraded=[]
    )
    dom, page = page_server.draw(payload(busy(), multi(performance)))
    assert text_of(dom, "concept-badge") == "concept drift"
    assert "badge-bad" in page.classes("concept-badge")
    assert page.by_id["concept-badge"]["title"] == held


def test_a_judged_window_is_green(page_server: PageServer) -> None:
    performance = unjudged(200, "", reference={"mae": 2.0}, unjudged="")
    dom, page = page_server.draw(payload(busy(), multi(performance)))
    assert text_of(dom, "concept-badge") == "no concept drift"
    assert "badge-ok" in page.classes("concept-badge")
    assert text_of(dom, "stat-accuracy-sub") == "ref 2.00 · 200 labels"
