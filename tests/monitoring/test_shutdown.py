"""A clean shutdown writes every answered request to the inference log before exiting."""

from __future__ import annotations

import subprocess
import sys
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


LEFT_OPEN = """
import sys, time
from pathlib import Path

import numpy as np

from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap_batches import merge
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry

if __name__ == "__main__":
    location, artifacts, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
    registry = Registry.open(location, Path(artifacts))
    tap = TapProcess(TapSpec((location, artifacts), MonitorConfig()))
    rows, predicted = np.array([[5.1, 3.5, 1.4, 0.2]]), np.array([0])
    call = (time.time(), registry.get_version("iris", 1), [sys.argv[4]], [1], {"input-0": rows},
            {"predict": predicted})
    tap.take(merge([call]))
    time.sleep(linger)
"""


@pytest.mark.parametrize("linger", [0.0, 3.0])
def test_a_program_that_ends_with_its_tap_open_exits_and_loses_nothing(
    labelled_iris: Registry, tmp_path: Path, linger: float
) -> None:
    """Without closing the tap: at once (its child still starting), or once the child runs
    (and ignores the SIGTERM that multiprocessing sends it at exit)."""
    script = tmp_path / "left_open.py"
    script.write_text(LEFT_OPEN)
    location, artifacts = labelled_iris.address()
    request_id = f"left-open-{linger}"
    done = subprocess.run(
        [sys.executable, str(script), location, artifacts, str(linger), request_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    try:
        assert log.find("iris", [request_id])[request_id].outputs == {"predict": [0]}
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
