"""``serve --workers 2``: one worker decides on the alerts for all, and its successor carries on."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pandas as pd
import pytest

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import reference_traffic, shifted_traffic
from tests.monitoring.test_workers import fresh, live_workers, sample
from tests.monitoring.webhook_receiver import Receiver
from tests.processes import Server, start, stop

pytestmark = pytest.mark.slow


def until(check: Any, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.2)


def test_the_alerts_outlive_the_worker_that_decides_on_them(
    labelled_iris: Registry, iris_frame: pd.DataFrame, receiver: Receiver
) -> None:
    """Each worker kept a book of its own, and only worker 0 told the webhook: once it was
    killed, its successor announced every active alert again as new, a resolve seen in the
    meantime was never announced, /api/alerts and alerts_fired_total went by the worker that
    answered (the counter read 1, 1, 2, 1)."""
    env = {
        "MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.3",
        "MODELPILOT_DRIFT_WINDOW_ROWS": "60",
        "MODELPILOT_ALERT_WEBHOOK_URL": receiver.url,
        "MODELPILOT_MONITOR_RESTORE": "false",
        "MODELPILOT_ALERT_KEEP_FIRING_SECONDS": "0",  # resolves at once, as it did
    }
    server = start(labelled_iris, "--workers", "2", env=env)
    try:
        for row in shifted_traffic(iris_frame, 120, seed=3):
            assert fresh("POST", f"{server.url}/predict/iris", json={"data": row.tolist()})
        until(lambda: receiver.told("data_drift") == ["firing"])
        (fired,) = fresh("GET", f"{server.url}/api/alerts").json()["active"]

        # Worker 0, started first (worker 1's share of the window keeps the drift).
        worker = min(live_workers(server), key=lambda w: w.create_time())
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        until(lambda: len(live_workers(server)) == 2 and worker.pid not in _pids(server))
        time.sleep(1.5)  # some rounds of the new worker's
        seen = [fresh("GET", f"{server.url}/api/alerts").json()["active"] for _ in range(10)]
        # The same alert (its message and value follow the figures), whoever answers.
        assert all([_key(a) for a in active] == [_key(fired)] for active in seen), seen
        counts = [
            sample(fresh("GET", f"{server.url}/metrics").text, "modelpilot_alerts_fired_total")
            for _ in range(10)
        ]
        assert all(c == [1.0] for c in counts), counts
        assert receiver.told("data_drift") == ["firing"]  # not announced again

        for row in reference_traffic(iris_frame, 200, seed=4):
            assert fresh("POST", f"{server.url}/predict/iris", json={"data": row.tolist()})
        until(lambda: receiver.told("data_drift") == ["firing", "resolved"])
        resolved = fresh("GET", f"{server.url}/api/alerts").json()["history"][-1]
        assert resolved["state"] == "resolved" and resolved["since"] == fired["since"]
        assert resolved["message"] == "no drift"  # what resolved it, not what fired it
    finally:
        assert stop(server) == 0
    assert receiver.told("data_drift") == ["firing", "resolved"]


def _key(alert: dict[str, Any]) -> tuple[object, ...]:
    return (alert["rule"], alert["model"], alert["severity"], alert["since"], alert["state"])


def _pids(server: Server) -> set[int]:
    return {worker.pid for worker in live_workers(server)}
