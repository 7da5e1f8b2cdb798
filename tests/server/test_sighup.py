"""SIGHUP (a closed terminal or SSH session, a process manager's "reload" by kill -HUP) stops
a server as SIGTERM does: not ready, drained, in-flight work finished, monitoring written.
It killed a single-process server on the spot, and a ``--workers`` supervisor with it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.processes import Server, start, stop

pytestmark = pytest.mark.slow

DRAIN = {"MODELPILOT_SHUTDOWN_DRAIN_SECONDS": "1"}
INFO = ("--log-level", "info")


def exited(server: Server) -> int:
    try:
        return server.process.wait(30)
    finally:
        stop(server)


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["one process", "workers"])
def test_sighup_stops_gracefully_as_sigterm_does(
    registry: Registry,
    slow_version: ModelVersion,
    tmp_path: Path,
    workers: tuple[str, ...],
) -> None:
    log = tmp_path / "server.log"
    server = start(registry, *INFO, *workers, env=DRAIN, log=log)
    serving = 2 if workers else 1
    for _ in range(600):  # every worker serving: one stopped while it starts has no drain
        if log.read_text().count("modelpilot.server: serving slow on") >= serving:
            break
        time.sleep(0.1)
    assert httpx.post(f"{server.url}/predict/slow", json={"data": [[0.0, 0.0]]}).is_success
    server.process.send_signal(signal.SIGHUP)
    assert exited(server) == 0
    said = log.read_text()
    assert "SIGHUP: stopping as on SIGTERM" in said
    drains = said.count("shutting down: not ready, serving on for 1 s")
    assert drains == serving, said
    assert said.rstrip().endswith("stopped") or "stopped" in said.splitlines()[-1], said


def test_sighup_ignored_at_start_stays_ignored(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """Under ``nohup`` the server outlives the terminal it was started from, as before."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited through exec
    try:
        server = start(registry, *INFO, env=DRAIN, log=tmp_path / "server.log")
    finally:
        signal.signal(signal.SIGHUP, previous)
    try:
        server.process.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert server.process.poll() is None
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    finally:
        assert stop(server) == 0
