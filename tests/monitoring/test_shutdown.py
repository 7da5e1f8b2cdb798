"""A clean shutdown writes every answered request to the inference log before exiting."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.registry.store import Registry
from tests.processes import start, stop

pytestmark = pytest.mark.slow


def test_sigterm_loses_nothing_from_the_inference_log(labelled_iris: Registry) -> None:
    server = start(labelled_iris)
    ids = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(50):
                reply = client.post("/predict/iris", json={"data": [5.0 + i / 100, 3.4, 1.5, 0.2]})
                ids.append(reply.json()["id"])
    finally:
        assert stop(server) == 0  # SIGTERM right after the last answer
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    try:
        found = log.find("iris", ids)
        assert len(found) == 50
        assert found[ids[-1]].inputs == {"input-0": [[5.49, 3.4, 1.5, 0.2]]}
    finally:
        log.close()


def test_serve_no_monitoring_turns_it_all_off(labelled_iris: Registry) -> None:
    server = start(labelled_iris, "--no-monitoring")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.post("/predict/iris", json={"data": [5.1, 3.5, 1.4, 0.2]}).is_success
            assert client.get("/api/alerts").status_code == 404
            assert client.get("/api/dashboard").status_code == 404
            assert "modelpilot_requests_total" in client.get("/metrics").text
    finally:
        assert stop(server) == 0
    assert not (Path(labelled_iris.location) / "inference-log.db").exists()
