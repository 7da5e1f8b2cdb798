"""The server's own alert on monitoring that loses requests (``monitoring_losing``) on a
server that serves, whose monitoring process is killed under traffic; and the count of
monitoring processes replaced (``modelpilot_monitor_process_restarts_total``), which no metric
said before."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pandas as pd
import pytest

from modelpilot.monitoring import tap_restarts
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import Served, metric, monitored, reference_traffic, send
from tests.monitoring.webhook_receiver import Receiver

LOSS_WINDOW_SECONDS = 120.0  # alert_rules.LOSS_WINDOW_SECONDS, as deploy/'s rate(...[2m])


def _waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitoring process that dies is replaced after a wait of 3 s, however long it ran:
    the requests answered meanwhile go unmonitored."""
    monkeypatch.setattr(tap_restarts, "STEADY_SECONDS", 3600.0)
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 3.0)


def _kill_monitoring_process(served: Served) -> int:
    tap = served.monitor.tap
    pid = tap.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    tap._process.join(10)  # type: ignore[attr-defined]
    return pid


async def _lose_requests(served: Served, frame: pd.DataFrame) -> None:
    """Requests answered and monitored, then the monitoring process killed, and requests
    answered while its replacement waits to start (``_waits``): those go unmonitored."""
    await send(served.client, reference_traffic(frame, 50, seed=1))
    served.monitor.flush()
    _kill_monitoring_process(served)
    await send(served.client, reference_traffic(frame, 50, seed=2))
    served.monitor.flush()  # finds it dead: the requests are dropped, and counted
    assert served.monitor.dropped > 0


async def _replaced(served: Served, frame: pd.DataFrame) -> None:
    """Traffic until the monitoring process is replaced (after its wait, ``_waits``)."""
    deadline = time.monotonic() + 120
    while served.monitor.tap.restarts == 0:
        assert time.monotonic() < deadline, "the monitoring process was never replaced"
        await asyncio.sleep(0.5)
        await send(served.client, reference_traffic(frame, 10, seed=3))
        served.monitor.flush()


async def test_requests_lost_fire_the_servers_alert_on_the_api_the_metrics_and_the_webhook(
    labelled_iris: Registry,
    receiver: Receiver,
    iris_frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no wait (``MODELPILOT_ALERT_MONITORING_LOSS_FOR_SECONDS=0``), requests left
    unmonitored by a monitoring process killed under traffic fire ``monitoring_losing``:
    on /api/alerts, as ``modelpilot_alert_active``, and at the webhook. The replacement is
    counted in ``modelpilot_monitor_process_restarts_total``."""
    _waits(monkeypatch)
    async with monitored(
        labelled_iris,
        alert_webhook_url=receiver.url,
        alert_monitoring_loss_for_seconds=0.0,
    ) as served:
        assert metric(served.monitor, "modelpilot_monitor_process_restarts_total") == 0
        await _lose_requests(served, iris_frame)
        dropped = served.monitor.dropped
        reply = (await served.client.get("/api/alerts")).json()
        (alert,) = [a for a in reply["active"] if a["rule"] == "monitoring_losing"]
        assert alert["model"] == "" and alert["severity"] == "warning"
        assert f"{dropped} answered requests lost to monitoring" in alert["message"]
        assert alert["value"] == pytest.approx(dropped * 60 / LOSS_WINDOW_SECONDS)
        text = (await served.client.get("/metrics")).text
        assert 'modelpilot_alert_active{model="",rule="monitoring_losing"' in text
        deadline = time.monotonic() + 60
        while "firing" not in receiver.told("monitoring_losing"):
            assert time.monotonic() < deadline, receiver.alerts
            await asyncio.sleep(0.1)
        await _replaced(served, iris_frame)
        assert metric(served.monitor, "modelpilot_monitor_process_restarts_total") == 1
        text = (await served.client.get("/metrics")).text
        assert "modelpilot_monitor_process_restarts_total 1.0" in text


async def test_one_replacement_waits_to_fire_by_default(
    labelled_iris: Registry, iris_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default one monitoring process killed under traffic pages no one: the rule holds,
    and its alert waits five minutes to fire (pending on /api/alerts, with when it would)."""
    _waits(monkeypatch)
    async with monitored(labelled_iris) as served:
        await _lose_requests(served, iris_frame)
        reply = (await served.client.get("/api/alerts")).json()
        assert not [a for a in reply["active"] if a["rule"] == "monitoring_losing"]
        (pending,) = [p for p in reply["pending"] if p["rule"] == "monitoring_losing"]
        assert pending["fires_at"] == pytest.approx(pending["since"] + 300)
        text = (await served.client.get("/metrics")).text
        assert 'modelpilot_alert_pending{model="",rule="monitoring_losing"' in text
