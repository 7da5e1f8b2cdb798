"""A restarted server asked for a version it no longer serves says why it has no report: it
did not put that version back from the inference log, not that the log held none of it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored, reference_traffic, send

NOT_IN_LOG = "the inference log held none of its recent requests or labels"


async def _restored(monitor: Monitor) -> None:
    deadline = time.monotonic() + 20
    while monitor.restoring or not monitor._last_evaluation:
        assert time.monotonic() < deadline, "the restore never ended"
        await asyncio.sleep(0.05)


async def test_a_version_rolled_away_from_is_said_not_to_be_served_not_missing_from_the_log(
    labelled_iris: Registry,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """After a restart, version 1 (rolled away from, its 300 requests in the log and its drift
    alert firing) was said to have none of its recent requests in the inference log."""
    async with monitored(labelled_iris, monitor_process=False) as first:
        await send(first.client, reference_traffic(iris_frame, 50, seed=4))
        await asyncio.to_thread(first.monitor.flush)
    reference = iris_frame.assign(species=iris_target)
    register_model(
        labelled_iris,
        "iris",
        iris_model_path,
        reference=reference,
        target="species",
        aliases=["production"],
    )
    async with monitored(labelled_iris, monitor_process=False) as restarted:
        restarted.monitoring.start()
        await _restored(restarted.monitor)
        reply = await restarted.client.get("/api/monitoring/iris", params={"version": 1})
        assert reply.status_code == 404
        error = reply.json()["error"]
        assert NOT_IN_LOG not in error
        assert error == (
            "no monitoring data for model 'iris' version 1 yet: it has answered no requests "
            "since the server started, and it is not served (iris's requests go to version "
            "2): a server puts back from the inference log only the windows and labels of the "
            "versions it serves; `modelpilot drift --model iris:1` reads what the log holds "
            "of it"
        )
        # The version served, with nothing logged, is still said to have nothing in the log.
        reply = await restarted.client.get("/api/monitoring/iris", params={"version": 2})
        assert NOT_IN_LOG in reply.json()["error"]
