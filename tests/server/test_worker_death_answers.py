"""``serve --workers``: a worker killed keeps its share of what the monitoring routes answer,
whichever worker answers, until the worker started in its place carries it on."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.processes import start, stop
from tests.server.test_worker_dashboard import listening, workers_of

pytestmark = pytest.mark.slow


def served(url: str) -> float:
    """The requests of the dashboard's throughput chart, summed over its intervals."""
    with httpx.Client(timeout=30) as client:
        series = client.get(f"{url}/api/dashboard").json()["series"]
    return sum(p["rps"] * (b["t"] - p["t"]) for p, b in itertools.pairwise(series))


def test_a_killed_workers_requests_stay_in_the_reports_and_charts(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """The tester killed one of three idle workers: /api/monitoring and the dashboard went
    from 9,356 requests to 8,199 for 5-7 s (its share, dropped at once), the worker started
    in its place answered /api/monitoring 404 ("still putting its windows back") for 1.5 s,
    and the throughput chart lost the dead worker's requests from every past interval."""
    server = start(registry, "--workers", "2", log=tmp_path / "server.log")
    try:
        answered_by: dict[int, int] = {}
        while len(answered_by) < 2 or min(answered_by.values()) < 10:
            with httpx.Client(timeout=10) as client:  # a new connection: either worker
                pid = client.post(f"{server.url}/predict/slow", json={"data": [[0.0, 0.0]]})
            key = int(pid.json()["predictions"][0])
            answered_by[key] = answered_by.get(key, 0) + 1
            assert sum(answered_by.values()) < 400, f"one worker took them all: {answered_by}"
        sent = sum(answered_by.values())
        time.sleep(5)  # two monitoring rounds: both workers have published
        charted = served(server.url)
        victim = min(answered_by)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        seen: list[object] = []
        serving_since = None
        while time.monotonic() - killed_at < 60:
            if serving_since is None:
                new = workers_of(server.process.pid) - set(answered_by)
                if new and listening(min(new)):
                    serving_since = time.monotonic()
            elif time.monotonic() - serving_since > 6:
                break
            try:
                with httpx.Client(timeout=30) as client:
                    answer = client.get(f"{server.url}/api/monitoring/slow")
                    seen.append(answer.json()["requests"] if answer.is_success else answer.text)
                    page = client.get(f"{server.url}/api/dashboard").json()
                    seen.append({m["name"]: m["requests"] for m in page["models"]}.get("slow"))
            except httpx.ReadError:
                # A connection the kernel had queued for the killed worker (the workers share
                # the port) is reset with it: no answer, and no figure to check.
                pass
            time.sleep(0.1)
        assert serving_since is not None, "no worker was started in place of the killed one"
        assert [r for r in seen if r != sent] == [], sent
        # The past is not rewritten: what was served before the kill is still on the chart.
        assert served(server.url) >= charted - 1, (served(server.url), charted)
    finally:
        stop(server)
