"""With the monitor sampling (MODELPILOT_MONITOR_SAMPLE_RATE < 1) a version's entry on
/api/monitoring and /api/dashboard says so, and how many requests it answered beside those
watched: "requests": 202 of a version that had answered 401 (as ``/metrics`` counted them)
was all the API and the page said (tester "settings" F2)."""

from __future__ import annotations

import asyncio

import pandas as pd

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, reference_traffic, send

REQUESTS = 120


async def test_a_sampled_version_counts_its_answered_requests_beside_the_watched(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    async with monitored(labelled_iris, monitor_sample_rate=0.5) as served:
        await send(served.client, reference_traffic(iris_frame, REQUESTS, seed=3), per_request=1)
        await asyncio.to_thread(served.monitor.flush)
        report = (await served.client.get("/api/monitoring/iris")).json()
        (listed,) = (await served.client.get("/api/monitoring")).json()
        dashboard = (await served.client.get("/api/dashboard")).json()
        unsampled = served.monitor.unsampled
    (shown,) = [m for m in dashboard["models"] if m["name"] == "iris"]
    for entry in (report, listed, shown):
        assert entry["monitor_sample_rate"] == 0.5
        assert entry["requests_answered"] == REQUESTS
        assert entry["requests"] == REQUESTS - unsampled
    assert 0 < unsampled < REQUESTS  # some of both, at 0.5 (1 - 2 * 0.5^120 of the time)


async def test_a_version_watched_whole_has_its_requests_alone(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    async with monitored(labelled_iris) as served:
        await send(served.client, reference_traffic(iris_frame, 20, seed=3), per_request=1)
        await asyncio.to_thread(served.monitor.flush)
        report = (await served.client.get("/api/monitoring/iris")).json()
    assert report["monitor_sample_rate"] == 1.0
    assert report["requests"] == 20 and report["requests_answered"] is None
