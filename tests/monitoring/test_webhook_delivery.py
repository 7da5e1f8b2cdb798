"""The webhook's URL is checked as httpx sends it, its thread outlives any failed send, it
follows the redirects that keep a POST, and its notifications carry an id per occurrence."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from modelpilot.config import Settings
from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition
from modelpilot.monitoring.webhook import MAX_REDIRECTS, Webhook
from tests.monitoring.webhook_receiver import Receiver


def url(receiver: Receiver, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{receiver.server_port}{path}"


def finished(webhook: Webhook, sent: int) -> None:
    """Wait until ``sent`` notifications were delivered or given up, then close."""
    deadline = time.monotonic() + 10
    while webhook.undelivered() and time.monotonic() < deadline:
        time.sleep(0.01)
    webhook.close()
    assert not webhook.undelivered(), f"{sent} notification(s) still waiting"


# -- F1: a URL with whitespace or control characters --------------------------------------


@pytest.mark.parametrize(
    "given",
    ["http://127.0.0.1:9/hook\n", "\thttp://127.0.0.1:9/hook", " http://127.0.0.1:9/hook\r\n"],
)
def test_whitespace_around_the_webhook_url_is_dropped(given: str) -> None:
    """A secret mounted from a file ends with a newline: the URL was taken with it, and httpx
    refused it at every notification."""
    assert Settings(alert_webhook_url=given).alert_webhook_url == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize("given", ["http://127.0.0.1:9/ho\nok", "http://127.0.0.1:9/a\tb\x7f"])
def test_a_control_character_inside_the_webhook_url_is_refused_at_start(given: str) -> None:
    with pytest.raises(ValidationError, match="is no URL that can be sent to"):
        Settings(alert_webhook_url=given)


def test_a_send_that_raises_is_counted_and_the_thread_goes_on(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx.InvalidURL is no httpx.HTTPError: it escaped and killed the webhook's thread, and
    every later notification waited, never sent, never counted as failed or dropped."""
    broken = Webhook(url(receiver) + "\n", 2.0, (0.05,))
    broken.send({"n": 1})
    broken.send({"n": 2})
    finished(broken, 2)
    assert (broken.failures, broken.dropped) == (2, 2)  # both tried, both counted
    assert "a notification could not be sent" in caplog.text and "InvalidURL" in caplog.text

    # A payload httpx will not encode (NaN is no JSON) fails alone; the next one goes.
    webhook = Webhook(url(receiver), 2.0, (0.05,))
    webhook.send({"n": float("nan")})
    webhook.send({"n": 3})
    finished(webhook, 2)
    assert receiver.requests == [("POST", "/hook", {"n": 3})]
    assert (webhook.failures, webhook.dropped) == (1, 1)


# -- F5: redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
def test_a_redirect_that_keeps_the_post_is_followed(receiver: Receiver, status: int) -> None:
    receiver.redirects = {"/hook": (status, "/moved"), "/moved": (status, "/real")}
    webhook = Webhook(url(receiver), 2.0, (0.05,))
    webhook.send({"n": 1})
    finished(webhook, 1)
    assert receiver.requests == [("POST", "/real", {"n": 1})]
    assert (webhook.failures, webhook.dropped) == (0, 0)


def test_a_redirect_that_would_make_a_get_is_refused_and_said(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A 302 followed as httpx (and browsers) follow it would GET the new place without the
    notification, and take its 200 for a delivery."""
    receiver.redirects = {"/hook": (302, "/real")}
    webhook = Webhook(url(receiver), 2.0, (0.05,))
    webhook.send({"n": 1})
    finished(webhook, 1)
    assert receiver.received == []
    assert (webhook.failures, webhook.dropped) == (1, 1)  # final: not tried again
    assert "set MODELPILOT_ALERT_WEBHOOK_URL to where it points" in caplog.text


def test_a_redirect_loop_is_refused(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.redirects = {"/a": (307, "/b"), "/b": (307, "/a")}
    webhook = Webhook(url(receiver, "/a"), 2.0, (0.05,))
    webhook.send({"n": 1})
    finished(webhook, 1)
    assert receiver.received == [] and webhook.dropped == 1
    assert f"more than {MAX_REDIRECTS} redirects" in caplog.text


# -- F3: what a notification carries --------------------------------------------------------


def test_notifications_carry_an_id_per_occurrence_and_no_nan(receiver: Receiver) -> None:
    """A receiver sent the same notification again (it answered after the timeout) had
    nothing to tell it by; and a figure that is NaN would not be sent at all."""
    book = AlertBook(url(receiver), rules=AlertRules(keep_firing_seconds=0.0))  # resolves at once

    def latency(holds: bool, value: float = 0.9) -> Condition:
        return Condition("latency", "", holds, "warning", "p99", value)

    book.update([latency(True)], now=1.0)
    book.update([latency(False, float("nan"))], now=2.0)
    book.update([latency(True)], now=3.0)  # a new occurrence
    book.close()
    alerts = [body["alerts"][0] for _, _, body in receiver.requests]
    assert [a["state"] for a in alerts] == ["firing", "resolved", "firing"]
    first, resolved, again = alerts
    assert first["id"] == resolved["id"] != again["id"]
    assert len(first["id"]) == 16 and resolved["value"] is None
    assert set(first) == {
        "id",
        "rule",
        "model",
        "severity",
        "message",
        "value",
        "since",
        "resolved_at",
        "state",
    }
