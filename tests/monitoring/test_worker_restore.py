"""``serve --workers``: a worker started in place of one that died puts the inference log's
labels back in its quality windows, as worker 0 does when the server starts; not the drift
rows, which the live siblings' windows hold part of."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor_state import MonitorState, totals_of
from modelpilot.monitoring.siblings import WorkerExchange, prometheus_dir
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import Served, dead_pid, monitored, reference_traffic, send

LABELS = 60


async def _labelled_traffic(registry: Registry, frame: pd.DataFrame) -> MonitorState:
    """A server alone answers ``LABELS`` requests and is told their labels, a third of them
    wrong (accuracy 2/3); returns its state of iris:1 (the labelled rows, with their keys)."""
    async with monitored(registry, monitor_process=False) as first:
        ids = await send(first.client, reference_traffic(frame, LABELS, seed=7), per_request=1)
        await asyncio.to_thread(first.monitor.flush)
        found = first.monitor.tap.lookup("iris", ids)
        labels = [
            {"request_id": i, "label": (_predicted(found[i].outputs) + (j % 3 == 0)) % 3}
            for j, i in enumerate(ids)
        ]
        answer = await first.client.post("/api/feedback/iris", json={"labels": labels})
        assert answer.json()["accepted"] == LABELS, answer.json()
        await asyncio.to_thread(first.monitor.flush)
        monitor = first.monitor.model_monitor("iris", 1)
        assert monitor is not None
        return monitor.state()


def _predicted(outputs: Mapping[str, Any]) -> int:
    return int(np.asarray(outputs["predict"])[0])


async def _restored(served: Served) -> ModelReport:
    """``served``'s iris report once its thread (started here) has restored ``LABELS``
    labels, or after 10 s."""
    served.monitoring.start()
    deadline = time.monotonic() + 10
    while True:
        await asyncio.sleep(0.1)
        report = await asyncio.to_thread(served.monitor.report, "iris")
        performance = report.performance
        if (performance and performance.labels >= LABELS) or time.monotonic() > deadline:
            return report


@pytest.mark.parametrize("index", [0, 1])
async def test_a_worker_replacing_a_dead_one_restores_the_labels(
    labelled_iris: Registry, iris_frame: pd.DataFrame, tmp_path: Path, index: int
) -> None:
    """A tester's worker 0, SIGKILLed, took the 520 labels it had restored at start with it,
    and its replacement read none back: every worker then judged no quality at all, where a
    restart of the whole server keeps them."""
    state = await _labelled_traffic(labelled_iris, iris_frame)
    assert len(state.labelled) == LABELS
    prometheus_dir(tmp_path).mkdir()  # as ``serve --workers`` makes the workers' directory
    # The dead worker of this index held every label; its last snapshot was set aside for the
    # worker started in its place. Its live sibling holds 20 of them too (posted to it).
    dead = WorkerExchange(tmp_path, index, CollectorRegistry(), pid=dead_pid())
    dead.publish([state])
    dead.retire()
    sibling = WorkerExchange(tmp_path, 1 - index, CollectorRegistry(), pid=os.getppid())
    held = replace(
        totals_of(state),
        requests=0,
        rows=0,
        labels_total=0,
        classes=np.zeros_like(state.classes),
        labelled=state.labelled[:20],
    )
    sibling.publish([held])

    settings = {"workers": 2, "worker_dir": tmp_path, "worker_index": index}
    async with monitored(labelled_iris, monitor_process=False, **settings) as replacement:
        report = await _restored(replacement)
    performance = report.performance
    assert performance is not None
    assert performance.labels == LABELS  # the sibling's 20 among them, counted once
    assert performance.current["accuracy"] == pytest.approx(2 / 3)
    # The labels total carries on from the dead worker's snapshot, as before: not again.
    assert report.labels_total == LABELS
    # The drift rows do not come back: the log does not say which worker answered which of
    # its requests, and the sibling's windows hold its own.
    assert report.drift is not None and report.drift.rows == 0


async def test_a_sibling_starting_with_worker_0_leaves_the_labels_to_it(
    labelled_iris: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """Worker 0 restores; a sibling that starts with it (no snapshot beside it yet) does not,
    the labels being pooled over the workers."""
    await _labelled_traffic(labelled_iris, iris_frame)
    prometheus_dir(tmp_path).mkdir()
    settings = {"workers": 2, "worker_dir": tmp_path, "worker_index": 1}
    async with monitored(labelled_iris, monitor_process=False, **settings) as sibling:
        sibling.monitoring.start()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(sibling.monitor.flush)
        assert sibling.monitor.model_monitor("iris", 1) is None  # no label, no window here
