"""How long the webhook waits for a receiver's answer is a setting
(``MODELPILOT_ALERT_WEBHOOK_TIMEOUT_SECONDS``): a receiver that answers within it gets each
notification once; one that answers later gets it again, with the same id and state, and the
log says why."""

from __future__ import annotations

import time

import pytest

from modelpilot.config import Settings
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alerts import AlertRules, Condition
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored
from tests.monitoring.webhook_receiver import Receiver

AT_ONCE = AlertRules(keep_firing_seconds=0.0)


def errors(holds: bool) -> Condition:
    message = "95.0% of 20 requests failed" if holds else "0.0% of 40 requests failed"
    return Condition("error_rate", "", holds, "critical", message, 0.95 if holds else 0.0)


def told(receiver: Receiver, count: int) -> list[tuple[str, str]]:
    """The (id, state) of each alert the receiver took, once it took ``count`` of them."""
    deadline = time.monotonic() + 30
    while len(receiver.alerts) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(a["id"], a["state"]) for a in receiver.alerts]


def test_the_answer_timeout_is_a_setting_with_a_default_above_five_seconds() -> None:
    """It was 5 s, fixed and said nowhere: a receiver that answered 200 in 6 s got every
    notification four times."""
    assert Settings().alert_webhook_timeout_seconds == 10.0
    assert Settings(alert_webhook_timeout_seconds="30").alert_webhook_timeout_seconds == 30.0


async def test_the_server_waits_for_answers_as_long_as_the_setting_says(
    labelled_iris: Registry, receiver: Receiver
) -> None:
    settings = {"alert_webhook_url": receiver.url, "alert_webhook_timeout_seconds": 2.5}
    async with monitored(labelled_iris, **settings) as served:
        webhook = served.monitor.alerts.webhook
        assert webhook is not None and webhook.timeout == 2.5


def test_a_receiver_that_answers_within_the_timeout_gets_each_notification_once(
    receiver: Receiver,
) -> None:
    receiver.delay = 0.6  # a receiver that does its work before it answers
    keeper = AlertKeeper(receiver.url, None, AT_ONCE, webhook_timeout=3.0)
    keeper.update([errors(True)], now=1000.0)
    keeper.update([errors(False)], now=1002.0)
    (fired, _), _ = said = told(receiver, 2)
    keeper.close()
    assert said == [(fired, "firing"), (fired, "resolved")]
    assert (keeper.book.webhook_failures, keeper.book.webhook_dropped) == (0, 0)


def test_a_receiver_slower_than_the_timeout_is_told_again_as_the_same_alert(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """It took the notification but answered too late: sent again, with what tells it the
    notification it has (the id and the state), and the log says to raise the setting."""
    receiver.delay = 0.6
    keeper = AlertKeeper(receiver.url, None, AT_ONCE, webhook_timeout=0.3)
    assert keeper.book.webhook is not None
    keeper.book.webhook.retry_seconds = (0.05,)  # one more attempt, then given up
    keeper.update([errors(True)], now=1000.0)
    said = told(receiver, 2)
    keeper.close()
    assert len(said) == 2 and len(set(said)) == 1 and said[0][1] == "firing"
    assert "no answer in 0.3 s, MODELPILOT_ALERT_WEBHOOK_TIMEOUT_SECONDS" in caplog.text
    assert "gets it again with the same id and state" in caplog.text
