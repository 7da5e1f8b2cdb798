"""What the webhook's log lines and payloads say: which notification was retried or lost
(an operator must close by hand a ``resolved`` a receiver missed), where a refused redirect
points, and which server of a machine a notification comes from."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from modelpilot.monitoring.alerts import HOST, AlertBook, AlertRules, Condition
from modelpilot.monitoring.webhook import Webhook
from tests.monitoring.webhook_receiver import Receiver

RESOLVED = {
    "source": "modelpilot",
    "alerts": [{"id": "5ab1e0c0ffee0001", "rule": "error_rate", "model": "", "state": "resolved"}],
}


def finished(webhook: Webhook) -> None:
    """Wait until what was sent was delivered or given up, then close."""
    deadline = time.monotonic() + 10
    while webhook.undelivered() and time.monotonic() < deadline:
        time.sleep(0.01)
    webhook.close()


def test_a_notification_retried_and_given_up_is_named(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    webhook = Webhook(receiver.url, 2.0, (0.01,))
    webhook.send(RESOLVED)
    finished(webhook)
    named = "resolved error_rate (service) id 5ab1e0c0ffee0001"
    retried = [r for r in caplog.records if r.levelno == logging.WARNING]
    given_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert retried and named in retried[0].getMessage()
    assert given_up and named in given_up[0].getMessage()
    assert "not taken after 2 attempts" in given_up[0].getMessage()
    assert all("\n" not in r.getMessage() for r in caplog.records)  # one line each


def test_a_refused_redirect_says_where_it_points(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """By scheme, host and port, as the receiver is named (``test_webhook_secrets``): the
    place pointed to may hold the same token in its path."""
    receiver.redirects = {"/hook": (301, "https://moved.example:8443/hook/T0K3N")}
    webhook = Webhook(receiver.url, 2.0, (0.01,))
    webhook.send(RESOLVED)
    finished(webhook)
    assert (
        "set MODELPILOT_ALERT_WEBHOOK_URL to where it points, https://moved.example:8443/*** "
        "(its answer's Location)" in caplog.text
    )
    assert "T0K3N" not in caplog.text
    assert webhook.dropped == 1


def test_a_full_queue_is_logged_once_a_minute_naming_what_it_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """5000 sends to a dead receiver logged 3999 lines, one per notification dropped."""
    with socket.socket() as nowhere:
        nowhere.bind(("127.0.0.1", 0))  # bound, not listening: refused
        webhook = Webhook(f"http://127.0.0.1:{nowhere.getsockname()[1]}/hook", 1.0, (60.0,), 2)
        for n in range(50):
            webhook.send({"alerts": [{"id": f"n{n}", "rule": "latency", "state": "firing"}]})
        webhook.close(timeout=5.0)
    full = [r.getMessage() for r in caplog.records if "too many notifications" in r.getMessage()]
    # The first, and at shutdown how many came after it.
    assert len(full) <= 2 and "dropped the oldest, the notification of firing latency" in full[0]
    assert webhook.dropped == 50  # pushed out of the queue, or left at shutdown
    shutdown = [r.getMessage() for r in caplog.records if "before shutdown" in r.getMessage()]
    assert shutdown and "firing latency (service) id n49" in shutdown[0]


def test_a_notification_names_the_server_beside_the_host(receiver: Receiver) -> None:
    """Two servers of one machine both sent ``"host": "vm"``."""
    book = AlertBook(receiver.url, rules=AlertRules(), server=f"{HOST}:8010")
    book.update([Condition("latency", "", True, "warning", "p99 latency 900 ms", 0.9)], now=1.0)
    book.close()
    (payload,) = receiver.received
    assert (payload["host"], payload["server"]) == (HOST, f"{HOST}:8010")
