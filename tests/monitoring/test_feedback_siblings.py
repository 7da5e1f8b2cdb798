"""Labels for request ids a sibling worker (``serve --workers``) or another server of the same
PostgreSQL registry may still be logging: looked for again without holding up other requests,
and reported unknown only once they could have arrived."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.siblings import prometheus_dir
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, send

THREADS = 4
"""The event loop's executor threads in this test: fewer than the posts looking again."""


async def test_labels_looked_for_again_hold_up_no_other_label(
    labelled_iris: Registry, tmp_path: Path
) -> None:
    """Each post of ids not on record waited out the siblings' rounds (2.5 s) in one of the
    loop's executor threads: a dozen such posts held all six, and every other label post
    waited behind them (0.05 s became 2.1 s)."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(THREADS))
    prometheus_dir(tmp_path).mkdir()  # as ``serve --workers`` makes the workers' directory
    async with monitored(labelled_iris, workers=2, worker_dir=tmp_path) as served:
        client, monitor = served.client, served.monitor
        assert monitor.exchange is not None and monitor.sibling_seconds >= 2.0
        (known,) = await send(client, np.array([[5.1, 3.5, 1.4, 0.2]]), per_request=1)
        await asyncio.to_thread(monitor.flush)
        posted = time.monotonic()
        unknown = [
            asyncio.create_task(
                client.post("/api/feedback/iris", json={"request_id": f"later-{i}", "label": 0})
            )
            for i in range(3 * THREADS)
        ]
        await asyncio.sleep(0.5)  # every one of them is looking again by now
        asked = time.monotonic()
        label = {"request_id": known, "label": 0}
        reply = await asyncio.wait_for(client.post("/api/feedback/iris", json=label), 10)
        assert reply.json() == {"accepted": 1, "unknown": []}
        assert time.monotonic() - asked < 1.0
        assert not any(task.done() for task in unknown)  # still looking again meanwhile
        replies = await asyncio.gather(*unknown)
        # They looked as long as before: until a sibling's round could have arrived.
        assert time.monotonic() - posted >= monitor.sibling_seconds
        assert all(r.status_code == 404 for r in replies), [r.text for r in replies]
        assert "no prediction of model 'iris' has the request id" in replies[0].json()["error"]


TOPOLOGIES = pytest.mark.parametrize("topology", ["replicas", "directory_replicas"])
"""Servers of one PostgreSQL registry, and servers started on one SQLite registry directory
(which refused 96 of 196 such labels in a tester's run, and judged quality apart)."""


@TOPOLOGIES
async def test_a_label_for_another_replicas_prediction_waits_for_it(
    topology: str, request: pytest.FixtureRequest
) -> None:
    """Two servers of one registry, behind a load balancer that sent the label to the one
    that did not answer: it got 404 at once, where a sibling worker would have waited for
    the prediction to reach the shared log (40 of 60 such labels were lost)."""
    first, second = request.getfixturevalue(topology)
    async with monitored(first) as answering, monitored(second) as labelling:
        assert labelling.monitor.exchange is None and labelling.monitor.log_shared
        (answered,) = await send(answering.client, np.array([[5.1, 3.5, 1.4, 0.2]]), per_request=1)
        label = {"request_id": answered, "label": 0}
        reply = await labelling.client.post("/api/feedback/iris", json=label)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"accepted": 1, "unknown": []}


@TOPOLOGIES
async def test_labels_posted_to_one_replica_reach_the_others_quality(
    topology: str,
    request: pytest.FixtureRequest,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    """Behind a load balancer, each server judged quality on the labels posted to it alone:
    one read 0.01 where another read 0.99, and only a restart read them all back."""
    first, second = request.getfixturevalue(topology)
    quick = {"monitor_interval_seconds": 0.2, "performance_min_labels": 20}
    async with monitored(first, **quick) as a, monitored(second, **quick) as b:
        b.monitoring.start()  # its thread, as a server runs it: it reads the labels
        rows = iris_frame.to_numpy()[:40]
        ids = await send(a.client, rows, per_request=1)
        await send(b.client, rows[:1], per_request=1)  # b serves iris too
        for _ in range(100):  # b's thread restored (no labels yet), then reported
            if "error" not in (await b.client.get("/api/monitoring/iris")).json():
                break
            await asyncio.sleep(0.1)
        wrong = (iris_target[:40] + 1) % 3  # every label contradicts its prediction
        labels = [{"request_id": i, "label": int(y)} for i, y in zip(ids, wrong, strict=True)]
        reply = await a.client.post("/api/feedback/iris", json={"labels": labels})
        assert reply.json()["accepted"] == 40
        for _ in range(100):  # server b was told nothing: it reads them from the log
            report = (await b.client.get("/api/monitoring/iris")).json()
            performance = report.get("performance")
            if performance is not None and performance["labels"] == 40:
                break
            await asyncio.sleep(0.1)
        assert performance is not None and performance["labels"] == 40, report
        assert performance["current"]["accuracy"] < 0.2
        # Read again and again, they stay 40 labels, and count nowhere twice.
        await asyncio.sleep(0.5)
        again = (await b.client.get("/api/monitoring/iris")).json()["performance"]
        assert again["labels"] == 40
        metrics = (await b.client.get("/metrics")).text
        assert 'modelpilot_labels_total{model="iris",version="1"} 40' not in metrics
