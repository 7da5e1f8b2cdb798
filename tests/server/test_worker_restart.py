"""A worker started in place of one that died takes connections only once it can answer them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.processes import answering_pids, start, stop

pytestmark = pytest.mark.slow

LOAD_SECONDS = 8.0
"""How long the model takes to load in the worker started in place of the killed one."""

PATIENCE_SECONDS = 3.0
"""How long a request may take: far more than the healthy worker needs, well under the load."""

SLOW_LOADING_MODEL = """
import os
import time

if os.path.exists({marker!r}):
    time.sleep({seconds!r})  # loading a large model


class Model:
    \"\"\"Answers with its process id.\"\"\"

    def predict(self, x):
        return [float(os.getpid())] * len(x)
"""


def test_a_new_worker_takes_no_connection_before_its_models_are_loaded(
    registry: Registry, tmp_path: Path
) -> None:
    """A worker started in place of a killed one listened on the shared port (SO_REUSEPORT)
    before it loaded its models: the kernel dealt it its share of the new connections, which
    waited unanswered for the whole load (17 s) while the other worker was idle. Now it
    listens once loaded, and every request meanwhile is answered by the other worker."""
    marker = tmp_path / "load-slowly"
    source = tmp_path / "slow.py"
    source.write_text(SLOW_LOADING_MODEL.format(marker=str(marker), seconds=LOAD_SECONDS))
    register_model(registry, "slow", source, flavor="python")
    server = start(registry, "--workers", "2", log=tmp_path / "server.log")
    try:
        first = answering_pids(server.url, 2)
        marker.touch()  # the next load, the replacement's, takes LOAD_SECONDS
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        waits: list[tuple[float, str]] = []
        answered_by: set[int] = set()
        deadline = time.monotonic() + 60
        while not answered_by - first and time.monotonic() < deadline:
            began = time.monotonic()
            try:
                # A new connection each time, so that the kernel deals it to any worker.
                with httpx.Client(timeout=PATIENCE_SECONDS) as client:
                    answer = client.post(f"{server.url}/predict/slow", json={"data": [[0.0]]})
                answered_by.add(int(answer.json()["predictions"][0]))
                outcome = str(answer.status_code)
            except httpx.HTTPError as exc:
                outcome = repr(exc)
            took = time.monotonic() - began
            if outcome != "200" or took >= PATIENCE_SECONDS:
                waits.append((round(took, 2), outcome))
            time.sleep(0.05)
        replacement = answered_by - first
        assert replacement, "the replacement worker never answered"
        assert not waits, f"requests that waited for the new worker's load: {waits}"
        assert killed not in answered_by
    finally:
        stop(server)
