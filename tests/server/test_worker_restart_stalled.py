"""A worker started in place of one that died during a stalled rollout comes up as its siblings
serve: on the version before the one that does not load."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.processes import start, stop
from tests.serving.conftest import corrupt

pytestmark = pytest.mark.slow

TELLS_ITS_PID = """
import os


class Model:
    def predict(self, x):
        return [float(os.getpid())] * len(x)
"""


def test_a_worker_restarted_during_a_stalled_rollout_serves_the_version_before(
    registry: Registry, tmp_path: Path
) -> None:
    """A model served at its latest version (no production alias) got a version 2 that does
    not load: the workers stayed on version 1, as documented. Then worker 0 died, and its
    replacement would not start ("pid:2: artifact ... is corrupted") until the supervisor
    gave up and stopped worker 1 too: every model went down."""
    source = tmp_path / "pid.py"
    source.write_text(TELLS_ITS_PID)
    register_model(registry, "pid", source, flavor="python")
    env = {"MODELPILOT_ALIAS_REFRESH_SECONDS": "0.2"}
    server = start(registry, "--workers", "2", env=env, log=tmp_path / "server.log")
    try:
        first = answering(server.url, lambda pids: len(pids) == 2)
        second = tmp_path / "pid_v2.py"
        second.write_text(TELLS_ITS_PID + "# version 2\n")  # an artifact of its own
        corrupt(registry, register_model(registry, "pid", second, flavor="python"))
        time.sleep(1.0)  # the workers try version 2, and stay on version 1
        os.kill(min(first), signal.SIGKILL)
        after = answering(server.url, lambda pids: bool(pids - first), seconds=90)
        assert server.process.poll() is None, "the server stopped"
        assert after - first, "the replacement worker never answered"
        assert max(first) in after  # the other worker served on throughout
    finally:
        stop(server)


def answering(url: str, enough: Callable[[set[int]], bool], seconds: float = 30) -> set[int]:
    """The pids of the workers that answer ``pid`` at ``url`` (each on version 1), once
    ``enough(pids)`` holds, or when ``seconds`` have passed."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    while not enough(seen) and time.monotonic() < deadline:
        try:
            # A new connection each time, so that the kernel may deal it to any worker.
            with httpx.Client(timeout=10) as client:
                answer = client.post(f"{url}/predict/pid", json={"data": [[0.0]]})
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == "1"
        seen.add(int(answer.json()["predictions"][0]))
        time.sleep(0.05)
    return seen
