"""A firing alert whose rule cannot judge holds at the figure it was last judged at (not the
0 of an empty window), and its messages say what happens to it: it holds while it fires, and a
resolution for want of a verdict does not say that it neither fires nor resolves."""

from __future__ import annotations

import time
from pathlib import Path

from modelpilot.monitoring.alert_book_store import BookFile
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alert_rules import service_conditions
from modelpilot.monitoring.alerts import (
    RESTORED_UNJUDGED_SECONDS,
    AlertBook,
    AlertRules,
    Condition,
)
from modelpilot.monitoring.history import ServicePoint
from tests.monitoring.webhook_receiver import Receiver

RULES = AlertRules(keep_firing_seconds=60.0)


def minute(requests: int, server_errors: int = 0) -> list[ServicePoint]:
    """A minute of ``requests`` requests, ``server_errors`` of them failed (5xx)."""
    return [
        ServicePoint(0.0, 60.0, requests, server_errors, 0.01, 0.01, 0.01, 0.0, 0, server_errors)
    ]


def error_rate(window: list[ServicePoint]) -> Condition:
    return {c.rule: c for c in service_conditions(window, RULES)}["error_rate"]


def test_a_drift_alert_whose_window_emptied_shows_the_share_it_last_judged() -> None:
    """The tester's drift alert, firing once its rows aged out, said 0% of the features had
    drifted: "no rows in the window", value 0.0, state firing."""
    book = AlertBook(rules=RULES)
    drifted = Condition("data_drift", "flaky:1", True, "warning", "2 of 4 features drifted", 0.5)
    (fired,) = book.update([drifted], now=1000.0)
    empty = Condition(
        "data_drift", "flaky:1", False, "warning", "no rows in the window", 0.0, False
    )
    assert book.update([empty], now=1002.0) == []
    (held,) = book.state().active
    assert (held.id, held.value, held.to_dict()["state"]) == (fired.id, 0.5, "firing")
    assert held.message.startswith("no rows in the window; ")
    assert "the alert holds, at the value last judged" in held.message


def test_an_error_rate_alert_on_too_few_requests_shows_the_rate_it_last_judged() -> None:
    book = AlertBook(rules=RULES)
    (fired,) = book.update([error_rate(minute(40, 20))], now=1000.0)
    assert fired.value == 0.5
    book.update([error_rate(minute(0))], now=1002.0)
    (held,) = book.state().active
    assert held.value == 0.5 and held.message.startswith("0 requests in the last 60 s")
    assert "neither fires nor resolves" not in held.message
    book.update([error_rate(minute(40, 10))], now=1004.0)  # judged again: its figure of now
    assert book.state().active[0].value == 0.25


def test_an_alert_resolved_for_want_of_a_verdict_does_not_say_it_neither_fires_nor_resolves(
    tmp_path: Path, receiver: Receiver
) -> None:
    """After a restart with no traffic, the resolution read "... too few to judge, so an alert
    neither fires nor resolves; could not be judged since the server restarted at ...:
    resolved after 600 s without a verdict"."""
    store = BookFile(tmp_path / "alert-books", "test-host:8000")
    first = AlertKeeper(receiver.url, None, RULES, store=store, server="test-host:8000")
    first.update([error_rate(minute(40, 20))], now=time.time() - 30)
    first.close()

    second = AlertKeeper(receiver.url, None, RULES, store=store, server="test-host:8000")
    restarted = time.time()
    second.update([error_rate(minute(0))], now=restarted + 10)
    (held,) = second.state().active
    assert held.value == 0.5 and "the alert holds" in held.message
    second.update([error_rate(minute(0))], now=restarted + RESTORED_UNJUDGED_SECONDS + 1)
    second.close()
    firing, resolved = receiver.alerts
    assert (resolved["id"], resolved["state"], resolved["value"]) == (firing["id"], "resolved", 0.5)
    message = resolved["message"]
    assert message.startswith("0 requests in the last 60 s, fewer than the 20 it is judged from")
    assert "could not be judged since the server restarted at" in message
    assert "neither fires nor resolves" not in message and "holds" not in message
