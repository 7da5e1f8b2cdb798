"""The webhook's URL is a secret (a chat relay's token in its path, a password, a
``?token=``): the server's log names the receiver by scheme, host and port alone."""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from modelpilot.monitoring.webhook import Webhook
from tests.monitoring.webhook_receiver import Receiver

NOTIFICATION = {
    "source": "modelpilot",
    "alerts": [{"id": "5ab1e0c0ffee0001", "rule": "data_drift", "model": "m:1", "state": "firing"}],
}
SECRETS = ("alice", "s3cretPW", "XOXBSECRETTOKEN", "abc123", "T000")


def secret_url(port: int, path: str = "/services/T000/XOXBSECRETTOKEN") -> str:
    return f"http://alice:s3cretPW@127.0.0.1:{port}{path}?token=abc123"


def finished(webhook: Webhook) -> None:
    deadline = time.monotonic() + 10
    while webhook.undelivered() and time.monotonic() < deadline:
        time.sleep(0.01)
    webhook.close()


def closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """What the server's log gets once ``modelpilot serve`` set the loggers up, for one
    test."""
    from modelpilot.server.logs import configure_logging

    root, client = logging.getLogger(), logging.getLogger("httpx")
    handlers, level, client_level = root.handlers[:], root.level, client.level
    configure_logging("info")
    written = io.StringIO()
    root.addHandler(logging.StreamHandler(written))
    yield written
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    client.setLevel(client_level)


def test_a_delivery_leaves_no_secret_in_the_server_log(
    receiver: Receiver, server_log: io.StringIO
) -> None:
    """httpx's own INFO line, once a notification, wrote the URL whole."""
    port = receiver.server_address[1]
    webhook = Webhook(secret_url(port), 2.0, (0.01,))
    webhook.send(NOTIFICATION)
    finished(webhook)
    assert receiver.received == [NOTIFICATION]
    log = server_log.getvalue()
    assert not [s for s in SECRETS if s in log], log
    assert "HTTP Request" not in log
    assert f"alert webhook http://127.0.0.1:{port}/*** took the notification of firing" in log


def test_failures_name_the_receiver_without_its_secrets(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """webhook.py wrote the URL into every warning, and httpx's refusal quotes it again."""
    receiver.status = 500
    port = receiver.server_address[1]
    webhook = Webhook(secret_url(port), 2.0, (0.01,))
    webhook.send(NOTIFICATION)
    finished(webhook)
    down = Webhook(secret_url(closed_port()), 2.0, (0.01,))
    down.send(NOTIFICATION)
    finished(down)
    said = [r.getMessage() for r in caplog.records if r.name == "modelpilot.monitoring.webhook"]
    assert len(said) == 4  # a retry and a giving up, of each
    assert not [s for s in SECRETS if s in caplog.text], caplog.text
    assert f"alert webhook http://127.0.0.1:{port}/***" in said[0]
    assert "answered 500 Internal Server Error" in said[1]


def test_a_refused_redirect_points_without_secrets(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.redirects = {
        "/services/T000/XOXBSECRETTOKEN?token=abc123": (301, "/moved/XOXBSECRETTOKEN")
    }
    port = receiver.server_address[1]
    webhook = Webhook(secret_url(port), 2.0, (0.01,))
    webhook.send(NOTIFICATION)
    finished(webhook)
    assert webhook.dropped == 1
    assert not [s for s in SECRETS if s in caplog.text], caplog.text
    assert f"where it points, http://127.0.0.1:{port}/*** (its answer's Location)" in caplog.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/services/T0/B0/XYZ", "https://hooks.example.com/***"),
        ("http://u:p@[::1]:8080/?token=abc", "http://[::1]:8080/***"),
        ("http://u:p@receiver:9000", "http://receiver:9000"),
        ("https://receiver/", "https://receiver"),
    ],
)
def test_the_receiver_as_shown(url: str, shown: str) -> None:
    from modelpilot.monitoring.webhook import shown_url

    assert shown_url(url) == shown
