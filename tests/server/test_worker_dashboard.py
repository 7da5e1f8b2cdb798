"""``serve --workers``: whichever worker answers ``/api/dashboard``, it shows the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.processes import start, stop

pytestmark = pytest.mark.slow

SENT = 30


def workers_of(supervisor: int) -> set[int]:
    """The worker processes of a ``serve --workers`` (not multiprocessing's resource tracker)."""
    found = set()
    for child in psutil.Process(supervisor).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            pass  # a worker killed, not reaped yet
    return found


def listening(pid: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections())
    except psutil.Error:
        return False


def test_a_restarted_worker_answers_the_dashboard_with_the_servers_figures(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """A worker started in place of one that died answered the page with an empty server (0
    requests) until its first monitoring round had ended, and with its own uptime (seconds,
    against the server's minutes): the page flipped between the two, answer by answer. Now
    it waits for its siblings' figures first, as /metrics does, and tells the server's uptime."""
    began = time.monotonic()
    server = start(registry, "--workers", "2", log=tmp_path / "server.log")
    # One connection: every request goes to one worker, whose sibling then has none to lose.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pids = {
            client.post("/predict/slow", json={"data": [[0.0, 0.0]]}).json()["predictions"][0]
            for _ in range(SENT)
        }
    try:
        (busy,) = pids
        (idle,) = workers_of(server.process.pid) - {int(busy)}
        time.sleep(3)  # a monitoring round: the busy worker has published its figures
        os.kill(idle, signal.SIGKILL)
        killed_at = time.monotonic()
        answers: list[tuple[float, float | None]] = []
        serving_since = None
        while time.monotonic() - killed_at < 60:
            if serving_since is None:
                new = workers_of(server.process.pid) - {int(busy), idle}
                if new and listening(min(new)):
                    serving_since = time.monotonic()
            elif time.monotonic() - serving_since > 6:
                break
            # A new connection each time, so that the kernel deals it to either worker.
            with httpx.Client(timeout=30) as client:
                page = client.get(f"{server.url}/api/dashboard").json()
            requests = {m["name"]: m["requests"] for m in page["models"]}.get("slow")
            answers.append((page["uptime_seconds"], requests))
            time.sleep(0.1)
        assert serving_since is not None, "no worker was started in place of the killed one"
        server_age = time.monotonic() - began
        assert all(requests == SENT for _, requests in answers), answers
        assert min(uptime for uptime, _ in answers) >= killed_at - began, answers
        # The kernel's start time of a process is rounded to its clock's ticks.
        assert max(uptime for uptime, _ in answers) <= server_age + 1, answers
        # The memory tile counts what a container must hold: the supervisor's too.
        system = page["system"]
        supervisor = psutil.Process(server.process.pid).memory_info().rss
        assert system["supervisor_memory_bytes"] >= supervisor // 2
        last = page["series"][-1]["memory_bytes"]
        assert system["memory_bytes"] == last + system["supervisor_memory_bytes"]
    finally:
        stop(server)
