"""``serve --workers``: a worker's scrapes hold its figures before its first monitoring round."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.siblings import SiblingCollector, WorkerExchange, prometheus_dir
from modelpilot.registry.store import Registry
from modelpilot.server.rest import metrics
from tests.monitoring.conftest import monitored


async def test_a_scrape_before_the_first_round_holds_the_answering_workers_figures(
    labelled_iris: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scrapes read every worker's figures from the snapshots, which a worker first wrote at
    the end of its first monitoring round (worker 0's waits for the restore from the
    inference log): for 8-15 s after ready, /metrics held modelpilot_start_time_seconds alone,
    not even the answering worker's uptime or CPU seconds."""
    monkeypatch.setattr(metrics, "FIRST_SCRAPE_WAIT_SECONDS", 0.2)
    prometheus_dir(tmp_path).mkdir()  # as ``serve --workers`` makes the workers' directory
    async with monitored(
        labelled_iris, workers=2, worker_dir=tmp_path, monitor_process=False
    ) as served:
        # Its monitor has not started: no round has ended, no snapshot been written.
        first = (await served.client.get("/metrics")).text
        assert 'modelpilot_uptime_seconds{worker="0"}' in first
        assert 'modelpilot_process_cpu_seconds_total{worker="0"}' in first
        assert 'modelpilot_monitor_dropped_total{worker="0"}' in first
        # The next scrape, answered by its sibling, holds them too.
        sibling = WorkerExchange(tmp_path, 1, CollectorRegistry(), pid=os.getppid())
        seen = {
            (sample.name, sample.labels["worker"])
            for family in SiblingCollector(sibling).collect()
            for sample in family.samples
        }
        assert ("modelpilot_uptime_seconds", "0") in seen
        assert ("modelpilot_process_cpu_seconds_total", "0") in seen
