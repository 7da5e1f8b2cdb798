"""A worker killed between two flushes of its service metrics loses every family alike."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

# A worker of ``serve --workers`` (its metrics in prometheus_client's multiprocess files)
# that answers two rounds of requests, flushes the first as its timer would, and is killed
# (SIGKILL, as by the OOM killer) before the second round's flush is due.
WORKER = textwrap.dedent(
    """
    import asyncio, os, signal

    from modelpilot.monitoring.service import ServiceMetrics

    async def main() -> None:
        metrics = ServiceMetrics()
        for round in range(2):
            for _ in range(3):
                metrics.request_finished("m", "1", "rest", "ok", 0.001, None)
            for _ in range(2):
                metrics.request_finished("m", "1", "rest", "422", 0.001, "InvalidInput")
            metrics.request_finished("m", "1", "rest", "504", 0.5, "InferenceTimeout")
            if round == 0:
                metrics.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_killed_workers_errors_and_timeouts_are_lost_with_its_requests(
    tmp_path: Path,
) -> None:
    """A tester's SIGKILLed worker left ``modelpilot_errors_total`` above the failed
    ``modelpilot_requests_total`` (4,120 InvalidInput errors, 4,117 422s): errors were
    written through at once, requests a second later."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = subprocess.run([sys.executable, "-c", WORKER], env=env, timeout=60)
    assert worker.returncode == -9
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(tmp_path))
    value = registry.get_sample_value
    failed = {"model": "m", "version": "1", "transport": "rest"}
    # The first round, flushed, is all there; the second, pending, is lost from each family.
    assert value("modelpilot_requests_total", {**failed, "status": "ok"}) == 3
    assert value("modelpilot_requests_total", {**failed, "status": "422"}) == 2
    assert value("modelpilot_requests_total", {**failed, "status": "504"}) == 1
    version = {"model": "m", "version": "1"}
    assert value("modelpilot_errors_total", {**version, "kind": "InvalidInput"}) == 2
    assert value("modelpilot_errors_total", {**version, "kind": "InferenceTimeout"}) == 1
    assert value("modelpilot_timeouts_total", version) == 1
    assert value("modelpilot_request_duration_seconds_count", failed) == 6
