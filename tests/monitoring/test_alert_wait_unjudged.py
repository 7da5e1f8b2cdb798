"""A drift alert's wait to fire (``MODELPILOT_ALERT_FOR_SECONDS``) counts only evaluations that
judged the drift to hold: one that cannot judge (an emptied window, too few rows or labels)
starts it over, as Prometheus drops a pending alert whose expression returns nothing. Kept
pending through a quiet spell, past its own ``fires_at``, a drift flagged by chance before it
fired the alert at the next flag, without ever having held for the wait."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition

WAIT = AlertRules(for_seconds=20.0, keep_firing_seconds=10.0)
DRIFTED = Condition("data_drift", "clf:1", True, "warning", "1 of 3 features drifted: a", 1 / 3)
EMPTIED = replace(DRIFTED, holds=False, message="no rows in the window", value=0.0, judged=False)


@pytest.mark.parametrize(
    "unjudged",
    [
        EMPTIED,
        replace(EMPTIED, message="too few rows for a verdict: 10 of the 30 needed"),
        Condition(
            "concept_drift", "clf:1", False, "critical", "no labels in the window", 0.0, False
        ),
    ],
    ids=["emptied", "too-few-rows", "no-labels"],
)
def test_an_evaluation_that_cannot_judge_starts_the_wait_over(unjudged: Condition) -> None:
    holds = replace(DRIFTED, rule=unjudged.rule, severity=unjudged.severity)
    book = AlertBook(rules=WAIT)
    assert book.update([holds], now=0.0) == []
    (pending,) = book.state().waiting(WAIT)
    assert (pending["since"], pending["fires_at"]) == (0.0, 20.0)
    assert book.update([unjudged], now=5.0) == []
    assert book.state().waiting(WAIT) == []  # no fires_at in the past
    assert book.update([unjudged], now=45.0) == []
    # The drift is flagged again an hour later: a wait of its own, not the old one's end.
    assert book.update([holds], now=3600.0) == []
    (pending,) = book.state().waiting(WAIT)
    assert pending["fires_at"] == 3620.0
    (fired,) = book.update([holds], now=3620.0)
    assert (fired.rule, fired.since) == (holds.rule, 3620.0)


def test_a_firing_alert_is_not_changed_by_the_wait_starting_over() -> None:
    book = AlertBook(rules=WAIT)
    book.update([DRIFTED], now=0.0)
    (fired,) = book.update([DRIFTED], now=20.0)
    assert book.update([EMPTIED], now=30.0) == []
    (held,) = book.state().active
    assert (held.id, held.value) == (fired.id, fired.value)
    assert book.state().pending == {}
