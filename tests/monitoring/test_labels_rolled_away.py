"""Servers of one PostgreSQL registry share the labels of a version rolled away from, as
they share those of the versions they serve: behind a load balancer they judge it on the same
labels, rather than each on the share the balancer sent it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.errors import NotFound
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored, send

QUICK = {"monitor_process": False, "monitor_interval_seconds": 0.2, "alias_refresh_seconds": 0}


@pytest.fixture
def rolled_replicas(
    replicas: tuple[Registry, Registry],
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> tuple[Registry, Registry]:
    """One PostgreSQL registry (``iris`` 1 and 2, 2 in production), opened by two servers."""
    reference = iris_frame.assign(species=iris_target)
    register_model(
        replicas[0],
        "iris",
        iris_model_path,
        reference=reference,
        target="species",
        aliases=["production"],
    )
    return replicas


async def _answered_by(served: Served, version: int) -> None:
    """Once ``served`` answers with ``version`` (an alias move is read within a request)."""
    for _ in range(100):
        tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64"}
        body = {"inputs": [{**tensor, "data": [5.1, 3.5, 1.4, 0.2]}]}
        reply = await served.client.post("/v2/models/iris/infer", json=body)
        if reply.json()["model_version"] == str(version):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never answered with version {version}")


def _labels_of_version_2(served: Served) -> int:
    try:
        report = served.monitor.report("iris", 2)
    except NotFound:
        return 0
    return 0 if report.performance is None else report.performance.labels


async def test_servers_share_the_labels_of_a_version_rolled_away_from(
    rolled_replicas: tuple[Registry, Registry], iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    """Rolled back from, version 2 read 0.488 on one server and 0.492 on the other: each
    took only the labels posted to it once version 2 was no longer served."""
    first, second = rolled_replicas
    async with monitored(first, **QUICK) as a, monitored(second, **QUICK) as b:
        a.monitoring.start()
        b.monitoring.start()
        rows = iris_frame.to_numpy()
        on_a = await send(a.client, rows[:20], per_request=1)  # version 2 answers
        on_b = await send(b.client, rows[20:40], per_request=1)
        first.set_alias("iris", "production", 1)  # rolled back
        await _answered_by(a, 1)
        await _answered_by(b, 1)
        # The balancer sends each label to the server that did not answer it.
        for server, ids, truth in ((b, on_a, iris_target[:20]), (a, on_b, iris_target[20:40])):
            labels = [{"request_id": i, "label": int(y)} for i, y in zip(ids, truth, strict=True)]
            reply = await server.client.post("/api/feedback/iris", json={"labels": labels})
            assert reply.json() == {"accepted": 20, "unknown": []}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _labels_of_version_2(a) == _labels_of_version_2(b) == 40:
                break
            await asyncio.sleep(0.2)
        assert (_labels_of_version_2(a), _labels_of_version_2(b)) == (40, 40)
