"""With ``--workers``, a model registered after start that joins on its first request is
loaded by every worker, as a repository load is: its readiness and the repository index no
longer depend on the worker a connection reaches (tester "races" #2)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model
from tests.processes import start, stop
from tests.server.conftest import SLOW_MODEL
from tests.server.test_runner import pids_seen

pytestmark = pytest.mark.slow


def test_a_model_joining_on_demand_is_loaded_in_every_worker(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    running = start(registry, "--workers", "2", env={"MODELPILOT_ALIAS_REFRESH_SECONDS": "0.2"})
    try:
        assert len(pids_seen(running.url)) == 2
        path = tmp_path / "late.py"
        path.write_text(SLOW_MODEL)
        register_model(registry, "late", path, flavor="python")
        with httpx.Client(timeout=30) as client:  # one connection: one worker
            assert client.post(f"{running.url}/predict/late", json={"data": [[0.0, 0.0]]})
        time.sleep(2.0)  # ten lookups
        for _ in range(30):  # new connections: either worker may answer
            with httpx.Client(timeout=10) as client:
                ready = client.get(f"{running.url}/v2/models/late/ready")
                assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
                index = client.post(f"{running.url}/v2/repository/index").json()
                (late,) = [entry for entry in index if entry["name"] == "late"]
                assert late["state"] == "READY", late
    finally:
        assert stop(running) == 0
