"""While a starting server puts its monitoring back from the inference log, a model without a
report yet is said to be restoring, not to have answered nothing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelpilot.monitoring.alerts import AlertState
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.siblings import WorkerExchange, prometheus_dir
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored

RESTORING = "the server is still putting its windows and labels back from the inference log"


async def _settled(monitor: Monitor, restoring: bool) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if monitor.restoring == restoring:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"restoring stayed {monitor.restoring}")


async def test_a_model_is_said_to_be_restoring_until_the_restore_is_done(
    labelled_iris: Registry,
) -> None:
    """A tester's restarted server answered ready, then for 4-10 s said of a model with days
    of history that "it has answered no requests since the server started"."""
    async with monitored(labelled_iris, monitor_process=False) as served:
        # Until the monitor's thread has run its restore, as at a server's start:
        answer = await served.client.get("/api/monitoring/iris")
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error.startswith(f"no monitoring data for model 'iris' yet: {RESTORING}"), error
        assert "answered no requests" not in error
        served.monitoring.start()
        await _settled(served.monitor, restoring=False)
        error = (await served.client.get("/api/monitoring/iris")).json()["error"]
        assert error == (
            "no monitoring data for model 'iris' yet: it has answered no requests since the "
            "server started, and the inference log held none of its recent requests or labels"
        )
    async with monitored(labelled_iris, monitor_process=False, monitor_restore=False) as served:
        assert not served.monitor.restoring
        error = (await served.client.get("/api/monitoring/iris")).json()["error"]
        assert "its first report is still to come (reports are made every 2 s)" in error


async def test_a_sibling_of_worker_0_waits_for_its_restore(
    labelled_iris: Registry, tmp_path: Path
) -> None:
    """Worker 0 restores as the server starts; a sibling answers "restoring" until worker 0
    has evaluated once (its alert book is there)."""
    prometheus_dir(tmp_path).mkdir()
    settings = {"workers": 2, "worker_dir": tmp_path, "worker_index": 1}
    async with monitored(labelled_iris, monitor_process=False, **settings) as sibling:
        sibling.monitoring.start()
        await asyncio.sleep(0.5)  # its own evaluations do not end the wait
        assert sibling.monitor.restoring
        error = (await sibling.client.get("/api/monitoring/iris")).json()["error"]
        assert RESTORING in error
        worker_0 = WorkerExchange(tmp_path, 0, CollectorRegistry(), pid=os.getppid())
        worker_0.publish_alerts(AlertState())
        await _settled(sibling.monitor, restoring=False)
