"""What a starting server restores from the inference log: the windows of the versions its
requests reach, whichever way it came to serve them, and in worker 0 whatever its siblings
did first."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.monitoring.siblings import WorkerExchange, prometheus_dir
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.monitoring.conftest import monitored, reference_traffic, send
from tests.monitoring.test_worker_restore import LABELS, _labelled_traffic

BROKEN = "class Model:\n    def predict(self, x):\n        return x\n"


async def _window_rows(engine: InferenceEngine, monitoring: ProcessMonitoring) -> int:
    """iris:1's drift window rows once the monitor has reported (restored rows only)."""
    monitor = monitoring.monitor
    assert monitor is not None
    await asyncio.to_thread(monitor.flush)
    report = await asyncio.to_thread(monitor.report, "iris", 1)
    return report.drift.rows if report.drift is not None else 0


async def test_a_server_started_on_the_version_before_restores_that_versions_window(
    labelled_iris: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """A tester's server restarted while production pointed at a version that does not load:
    it served version 1, as it should, but restored the windows of version 2 (none), so
    version 1's drift window came back empty and its firing drift alert was gone."""
    async with monitored(labelled_iris) as first:
        await send(first.client, reference_traffic(iris_frame, 50, seed=3))
        await asyncio.to_thread(first.monitor.flush)
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    broken = register_model(labelled_iris, "iris", script)
    stored = labelled_iris.artifacts.path_for(broken.artifact_sha256)
    stored.write_text(BROKEN + "# tampered\n")
    labelled_iris.set_alias("iris", "production", 1)
    labelled_iris.set_alias("iris", "production", broken.version)

    settings = make_settings(labelled_iris, monitor_process=False)
    engine = InferenceEngine(labelled_iris, settings)
    await engine.start()  # as `serve` does: on version 1, where the alias pointed before
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    try:
        assert [(n, v.version if v else None) for n, v in engine.served.current_versions()] == [
            ("iris", 1)
        ]
        assert await _window_rows(engine, monitoring) == 50
    finally:
        await engine.stop()
        monitoring.stop()


async def test_worker_0_restores_though_a_sibling_published_first(
    labelled_iris: Registry, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """A sibling scraped before worker 0's monitor started publishes its figures; worker 0,
    seeing a snapshot, took itself for a worker replacing a dead one and restored no drift
    window."""
    await _labelled_traffic(labelled_iris, iris_frame)
    prometheus_dir(tmp_path).mkdir()
    sibling = WorkerExchange(tmp_path, 1, CollectorRegistry(), pid=os.getppid())
    sibling.publish([])
    settings = {"workers": 2, "worker_dir": tmp_path, "worker_index": 0}
    async with monitored(labelled_iris, monitor_process=False, **settings) as worker:
        rows = await _window_rows(worker.engine, worker.monitoring)
    assert rows == LABELS
