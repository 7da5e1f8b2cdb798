"""Labels of the requests a sampled inference log leaves out join in memory for as many of
the newest requests as the log's bound (``MODELPILOT_INFERENCE_LOG_MAX_ROWS``), not for a
fixed 100,000 whatever the bound said."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored
from tests.monitoring.test_monitor import IRIS_ROWS


async def _old_label_after(
    registry: Registry, monitor_process: bool, max_rows: int, later: int
) -> int:
    """The status of a label for a request answered ``later`` requests ago, which a log
    that keeps none of them (a sample rate of 0) left to memory."""
    settings = {"inference_log_sample_rate": 0.0, "inference_log_max_rows": max_rows}
    async with monitored(registry, monitor_process=monitor_process, **settings) as served:
        monitor, version = served.monitor, registry.get_version("iris", 1)
        monitor.predicted(version, ["old"], [1], {"input-0": IRIS_ROWS[:1]}, {"predict": [0]})
        await asyncio.to_thread(monitor.flush)  # a round of its own, as minutes apart
        rows = np.repeat(IRIS_ROWS[:1], later, axis=0)
        ids = [f"later-{i}" for i in range(later)]
        predict = np.zeros(later, dtype=np.int64)
        monitor.predicted(version, ids, [1] * later, {"input-0": rows}, {"predict": predict})
        await asyncio.to_thread(monitor.flush)
        label = {"request_id": "old", "label": 0}
        reply = await served.client.post("/api/feedback/iris", json=label)
        return reply.status_code


@pytest.mark.parametrize("monitor_process", [False, True], ids=["in-process", "own-process"])
async def test_a_late_label_of_a_request_the_log_left_out_joins_within_its_bound(
    labelled_iris: Registry, monitor_process: bool
) -> None:
    """At a sample rate of 0.3, 29 of 50 late labels were refused after 134,105 requests,
    with the log far below its 200,000-request bound."""
    assert await _old_label_after(labelled_iris, monitor_process, 200_000, 150_000) == 200


async def test_a_label_older_than_the_bound_is_refused(labelled_iris: Registry) -> None:
    assert await _old_label_after(labelled_iris, False, 1_000, 1_500) == 404
