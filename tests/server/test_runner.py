"""``modelpilot serve`` as a real process: conformance, graceful shutdown, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.linear_model import LogisticRegression

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model
from tests.conftest import free_port
from tests.processes import Server, serve_command, start, stop

pytestmark = pytest.mark.slow

SLOW_MODEL = '''
import os
import time


class Model:
    """Sleeps for the first value (seconds), then answers with its process id."""

    def predict(self, x):
        if x[0, 0] > 0:
            time.sleep(float(x[0, 0]))
        return [float(os.getpid())] * len(x)
'''


@pytest.fixture
def slow_version(registry: Registry, tmp_path: Path) -> ModelVersion:
    path = tmp_path / "slow.py"
    path.write_text(SLOW_MODEL)
    return register_model(registry, "slow", path, flavor="python")


@pytest.fixture
def server(
    registry: Registry, iris_version: ModelVersion, slow_version: ModelVersion
) -> Iterator[Server]:
    running = start(registry)
    yield running
    stop(running)


def test_triton_clients_get_the_models_own_answers(
    server: Server, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.to_numpy()[::15]
    expected = iris_model.predict(iris_frame.iloc[::15])

    http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http}")
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready("iris")
    assert http.get_model_metadata("iris")["inputs"][0]["shape"] == [-1, 4]
    tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=True)
    np.testing.assert_array_equal(http.infer("iris", [tensor]).as_numpy("predict"), expected)
    http.close()

    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready("iris")
    assert grpc.get_model_metadata("iris").inputs[0].datatype == "FP64"
    tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    np.testing.assert_array_equal(grpc.infer("iris", [tensor]).as_numpy("predict"), expected)
    grpc.close()

    simple = httpx.post(f"{server.url}/predict/iris", json={"data": rows.tolist()}).json()
    assert simple["predictions"] == expected.tolist()

    metrics = httpx.get(f"{server.url}/metrics").text
    for transport, count in (("rest", 2), ("grpc", 1)):
        line = (
            f'modelpilot_requests_total{{model="iris",status="ok",transport="{transport}",'
            f'version="1"}} {count:.1f}'
        )
        assert line in metrics


def test_sigterm_lets_in_flight_requests_finish(server: Server) -> None:
    answers: list[httpx.Response] = []

    def slow_call() -> None:
        answers.append(
            httpx.post(f"{server.url}/predict/slow", json={"data": [[1.5, 0.0]]}, timeout=30)
        )

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.5)  # the request is now inside the model
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/health/live", timeout=2)
    caller.join(30)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["predictions"] == [float(server.process.pid)]
    assert server.process.wait(20) == 0


def test_a_port_in_use_is_a_clear_error(registry: Registry, iris_version: ModelVersion) -> None:
    running = start(registry)
    try:
        # HTTP, then gRPC alone and with workers (which share ports among themselves only).
        cases = [
            (running.http, 0, (), running.http),
            (free_port(), running.grpc, (), running.grpc),
            (free_port(), running.grpc, ("--workers", "2"), running.grpc),
        ]
        for http, grpc, extra, taken in cases:
            clash = subprocess.run(
                serve_command(registry, http, grpc, *extra),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert clash.returncode == 1
            assert f"cannot listen on 127.0.0.1:{taken}" in clash.stderr
            assert "Traceback" not in clash.stderr
    finally:
        stop(running)


def pids_seen(url: str, tries: int = 60) -> set[int]:
    seen = set()
    for _ in range(tries):
        # A new connection each time, so that the kernel may pick another worker.
        with httpx.Client() as client:
            answer = client.post(f"{url}/predict/slow", json={"data": [[0.0, 0.0]]}, timeout=10)
        seen.add(int(answer.json()["predictions"][0]))
    return seen


def grpc_pids_seen(port: int, tries: int = 40) -> set[int]:
    seen = set()
    request = grpcclient.InferInput("input-0", [1, 2], "FP64")
    request.set_data_from_numpy(np.zeros((1, 2)))
    for _ in range(tries):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            seen.add(int(client.infer("slow", [request]).as_numpy("predict")[0]))
        finally:
            client.close()
    return seen


def test_workers_share_the_port_and_are_restarted(
    registry: Registry, slow_version: ModelVersion
) -> None:
    running = start(registry, "--workers", "2")
    try:
        first = pids_seen(running.url)
        assert len(first) == 2
        assert running.process.pid not in first
        assert grpc_pids_seen(running.grpc) == first
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        replaced: set[int] = set()
        while time.monotonic() < deadline:
            try:
                replaced = pids_seen(running.url, tries=20)
            except (httpx.HTTPError, ValueError):
                replaced = set()
            if len(replaced) == 2 and victim not in replaced:
                break
            time.sleep(0.3)
        assert len(replaced) == 2 and victim not in replaced
    finally:
        assert stop(running) == 0


def test_unload_and_load_reach_every_worker(registry: Registry, slow_version: ModelVersion) -> None:
    """The repository API reaches one worker; every worker follows within a lookup or two."""
    running = start(registry, "--workers", "2", env={"MODELPILOT_ALIAS_REFRESH_SECONDS": "0.2"})
    try:
        assert len(pids_seen(running.url)) == 2
        unloaded = httpx.post(f"{running.url}/v2/repository/models/slow/unload", timeout=10)
        assert unloaded.status_code == 200
        time.sleep(1.0)  # five lookups
        for _ in range(40):  # new connections: either worker may answer
            with httpx.Client(timeout=10) as client:
                answer = client.post(f"{running.url}/predict/slow", json={"data": [[0.0, 0.0]]})
                assert answer.status_code == 404 and "was unloaded" in answer.text
                assert client.get(f"{running.url}/v2/models/slow/ready").status_code != 200
        loaded = httpx.post(f"{running.url}/v2/repository/models/slow/load", timeout=30)
        assert loaded.status_code == 200
        time.sleep(1.0)
        assert len(pids_seen(running.url)) == 2  # both answer it again (pids_seen checks 200s)
    finally:
        assert stop(running) == 0
