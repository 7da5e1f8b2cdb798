"""A version that a model's requests go to again (a rollback) gets its labels back from the
inference log in a running server, as a server started now would restore them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelpilot.errors import NotFound
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored, reference_traffic, send

FAST = {"monitor_process": False, "monitor_interval_seconds": 0.1, "alias_refresh_seconds": 0}


async def _report(served: Served, version: int, labels: int) -> ModelReport | None:
    """iris:``version``'s report once it has ``labels`` labels (or after 10 s, as it is)."""
    deadline = time.monotonic() + 10
    report = None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        try:
            report = served.monitor.report("iris", version)
        except NotFound:
            continue
        if report.performance is not None and report.performance.labels >= labels:
            break
    return report


async def test_a_version_rolled_back_to_gets_its_labels_back(
    labelled_iris: Registry, iris_model_path: Path, iris_frame: pd.DataFrame
) -> None:
    """Two servers behind a load balancer, after `modelpilot rollback`: the one restarted
    meanwhile judged version 1 on the 320 labels of the last day, the other on the 20
    posted since (fewer than it judges from), and the balancer's answers flipped between."""
    async with monitored(labelled_iris, **FAST) as first:  # version 1 answers
        ids = await send(first.client, reference_traffic(iris_frame, 40, seed=3), per_request=1)
        await asyncio.to_thread(first.monitor.flush)
        labels = [{"request_id": i, "label": 0} for i in ids]
        answer = await first.client.post("/api/feedback/iris", json={"labels": labels})
        assert answer.json()["accepted"] == 40
    register_model(labelled_iris, "iris", iris_model_path, aliases=["production"])
    async with monitored(labelled_iris, **FAST) as second:  # version 2 answers
        second.monitoring.start()
        await send(second.client, np.array([[5.1, 3.5, 1.4, 0.2]]))
        await asyncio.sleep(0.3)  # a few evaluations: a version rolled away from stays behind
        assert second.monitor.model_monitor("iris", 1) is None
        labelled_iris.set_alias("iris", "production", 1)  # rolled back
        report = await _report(second, 1, 40)
    assert report is not None and report.performance is not None
    assert report.performance.labels == 40
    assert report.labels_total == 0  # counted where they were posted, not again
