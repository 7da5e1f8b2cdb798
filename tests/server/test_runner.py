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
from tritonclient.utils import InferenceServerException

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model
from tests.conftest import free_port
from tests.processes import Server, serve_command, start, stop

pytestmark = pytest.mark.slow


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


def test_sigterm_lets_in_flight_requests_finish(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    server = start(registry, log=log)
    answers: list[httpx.Response] = []

    def slow_call() -> None:
        answers.append(
            httpx.post(f"{server.url}/predict/slow", json={"data": [[1.5, 0.0]]}, timeout=30)
        )

    caller = threading.Thread(target=slow_call)
    try:
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
    finally:
        stop(server)
    written = log.read_text()
    assert "Traceback" not in written and "cut off" not in written
    assert "exiting without waiting" not in written  # nothing left running: a normal exit


def in_flight(server: Server) -> dict[str, int]:
    """The requests each model is answering right now, as ``/metrics`` says."""
    counts = {}
    for line in httpx.get(f"{server.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("modelpilot_inflight_requests{"):
            model = line.split('model="', 1)[1].split('"', 1)[0]
            counts[model] = int(float(line.rsplit(" ", 1)[1]))
    return counts


def wait_for_in_flight(server: Server, wanted: dict[str, int]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        counts = in_flight(server)
        if all(counts.get(model, 0) >= n for model, n in wanted.items()):
            return
        time.sleep(0.05)
    raise AssertionError(f"never {wanted} requests in flight")


def assert_cut_off(answer: httpx.Response | None, request_id: str) -> None:
    """``answer`` is the 503 of a request still running at the end of the grace."""
    assert answer is not None and answer.status_code == 503, answer
    assert answer.json()["error"].startswith("the server is shutting down: this request was")
    assert answer.headers["x-request-id"] == request_id
    assert answer.headers["retry-after"] == "1"


def test_sigterm_cuts_off_what_outlasts_the_grace_and_exits_soon(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """A model call stuck far longer than the grace held the process until it returned (it
    exited 19 s after SIGTERM with a grace of 2 s), and its request got a plain-text 500 and
    a traceback in the log. Now it gets 503 JSON at the end of the grace, an in-flight gRPC
    call UNAVAILABLE, a request that finishes within the grace its answer (logged, too), and
    the process exits at once, without waiting for the thread still running the model."""
    register_model(registry, "quick", tmp_path / "slow.py", flavor="python")
    log = tmp_path / "server.log"
    running = start(registry, grace=1, log=log)
    answers: dict[str, httpx.Response] = {}
    answered_at: dict[str, float] = {}
    statuses: list[str] = []

    def rest_call(model: str, seconds: float, request_id: str) -> None:
        answers[request_id] = httpx.post(
            f"{running.url}/predict/{model}",
            json={"data": [[seconds, 0.0]]},
            headers={"x-request-id": request_id},
            timeout=60,
        )
        answered_at[request_id] = time.monotonic()

    def grpc_call() -> None:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{running.grpc}")
        tensor = grpcclient.InferInput("input-0", [1, 2], "FP64")
        tensor.set_data_from_numpy(np.array([[60.0, 0.0]]))
        try:
            client.infer("slow", [tensor])
            statuses.append("OK")
        except InferenceServerException as exc:
            statuses.append(f"{exc.status()}: {exc.message()}")
        finally:
            client.close()

    stuck = [
        threading.Thread(target=rest_call, args=("slow", 60.0, "stuck-1")),
        # Percent-encoded, so that FastAPI answers it rather than the fast path.
        threading.Thread(target=rest_call, args=("sl%6Fw", 60.0, "stuck-2")),
        threading.Thread(target=grpc_call),
    ]
    finishing = threading.Thread(target=rest_call, args=("quick", 0.5, "finishing-1"))
    callers = [*stuck, finishing]
    try:
        for caller in stuck:
            caller.start()
        wait_for_in_flight(running, {"slow": 3})
        finishing.start()
        wait_for_in_flight(running, {"quick": 1})  # and done 0.5 s after it started
        signalled, code, took = terminated(running)
    finally:
        stop(running)
        for caller in callers:
            if caller.ident is not None:
                caller.join(30)
    assert code == 0
    # Far from the 60 s the stuck calls would take; the rest is the niced monitoring process
    # writing what it holds, which takes seconds when the tests beside it keep both cores busy.
    assert took < 1 + 10, f"exited {took:.1f} s after SIGTERM, with a grace of 1 s"
    assert_cut_off(answers.get("stuck-1"), "stuck-1")
    assert_cut_off(answers.get("stuck-2"), "stuck-2")
    assert answered_at["stuck-1"] - signalled > 0.95  # not before the grace ended
    assert answers["finishing-1"].status_code == 200
    # With a reason: dropped, the connection read "Stream removed" to the client.
    (status,) = statuses
    assert status.startswith("StatusCode.UNAVAILABLE: the server is shutting down"), status
    written = log.read_text()
    assert "Traceback" not in written and "Exception in ASGI application" not in written
    assert "cut off 2 HTTP request(s) still running after 1 s" in written
    assert "exiting without waiting for 1 thread(s)" in written
    inference_log = InferenceLog(registry.companion_engine("inference-log"))
    try:
        assert list(inference_log.find("quick", ["finishing-1"])) == ["finishing-1"]
    finally:
        inference_log.close()


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


def test_workers_cut_off_what_outlasts_the_grace_and_exit_soon(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """With worker processes, every request still running at the end of the grace gets 503
    JSON (each got a plain-text 500), and the workers and the supervisor exit soon after. A
    grace of half a second is half a second (it was rounded to a whole one, 0 s to 1 s)."""
    log = tmp_path / "server.log"
    running = start(registry, "--workers", "2", grace=0.5, log=log)
    answers: dict[str, httpx.Response] = {}

    def stuck_call(request_id: str) -> None:
        answers[request_id] = httpx.post(
            f"{running.url}/predict/slow",
            json={"data": [[60.0, 0.0]]},
            headers={"x-request-id": request_id},
            timeout=60,
        )

    callers = [threading.Thread(target=stuck_call, args=(f"stuck-{i}",)) for i in range(3)]
    try:
        assert len(pids_seen(running.url)) == 2  # both workers answer
        for caller in callers:
            caller.start()
        time.sleep(1.0)  # the requests are now inside the model, or waiting for it
        _, code, took = terminated(running)
    finally:
        stop(running)
        for caller in callers:
            caller.join(30)
    assert code == 0
    assert took < 0.5 + 10, f"exited {took:.1f} s after SIGTERM, with a grace of 0.5 s"
    for i in range(3):
        assert_cut_off(answers.get(f"stuck-{i}"), f"stuck-{i}")
        assert "grace period of 0.5 s" in answers[f"stuck-{i}"].json()["error"]
    written = log.read_text()
    assert "Traceback" not in written and "did not stop in time" not in written
    assert "still running after 0.5 s" in written


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


def terminated(running: Server) -> tuple[float, int, float]:
    """SIGTERM ``running``: when it was sent (monotonic), the exit code, and the seconds the
    process took to exit."""
    signalled = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    code = running.process.wait(30)
    return signalled, code, time.monotonic() - signalled
