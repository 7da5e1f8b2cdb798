"""A worker that cannot start again while its siblings serve does not take them down: the
supervisor tries it again now and then, and the others serve on."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from modelpilot.config import Settings
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.server.supervisor import Supervisor
from modelpilot.serving.registration import register_model
from tests.conftest import free_port

pytestmark = pytest.mark.slow

LOADS_WHILE_ABSENT = """
import os


class Model:
    \"\"\"Loads while {marker!r} does not exist (its weights gone, say, once it does).\"\"\"

    def load(self):
        if os.path.exists({marker!r}):
            raise RuntimeError("the weights are gone")

    def predict(self, x):
        return [float(os.getpid())] * len(x)
"""


def test_a_worker_that_cannot_start_again_leaves_the_others_serving(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 0 killed (an OOM kill), its model's load failing since: its replacement died
    five times, and the supervisor then stopped worker 1 too, so that every model went down
    ("the workers cannot start: ..."), where one worker had served them all."""
    marker = tmp_path / "weights-gone"
    source = tmp_path / "weighted.py"
    source.write_text(LOADS_WHILE_ABSENT.format(marker=str(marker)))
    register_model(registry, "weighted", source, flavor="python")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # Supervisor.run sets it
    port = free_port()
    settings = Settings(registry=registry.location, host="127.0.0.1", http_port=port, grpc_port=0)
    # By number: a version with no version before to start on (test_start_before_latest.py).
    supervisor = Supervisor(settings, [ModelRef.parse("weighted:1")], 2, give_up_after=3)
    url = f"http://127.0.0.1:{port}/predict/weighted"
    answers: list[int] = []
    returned = threading.Event()

    def kill_worker_0_then_ask() -> None:
        deadline = time.monotonic() + 120
        pids: set[int] = set()
        while len(pids) < 2 and time.monotonic() < deadline and not returned.is_set():
            try:
                with httpx.Client(timeout=10) as client:  # a new connection: any worker
                    pids.add(int(client.post(url, json={"data": [[1.0]]}).json()["predictions"][0]))
            except httpx.HTTPError:
                time.sleep(0.1)
        marker.touch()  # no worker loads the model from now on
        os.kill(supervisor._processes[0].pid or 0, signal.SIGKILL)
        while time.monotonic() < deadline and not returned.is_set():
            if supervisor._failures.get(0, 0) >= supervisor.give_up_after:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # the supervisor's round after the give-up count
        for _ in range(5):
            if returned.is_set():
                break
            try:
                # A new connection each time, so that the kernel may deal it to any worker.
                with httpx.Client(timeout=10) as client:
                    answers.append(client.post(url, json={"data": [[1.0]]}).status_code)
            except httpx.HTTPError:
                answers.append(0)
        if not returned.is_set():  # else SIGTERM would reach pytest itself
            os.kill(os.getpid(), signal.SIGTERM)

    asker = threading.Thread(target=kill_worker_0_then_ask)
    asker.start()
    try:
        assert supervisor.run() == 0
    finally:
        returned.set()
        asker.join()
    assert supervisor._failures[0] >= 3
    assert answers == [200] * 5
