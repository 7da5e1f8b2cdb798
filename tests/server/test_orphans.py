"""Workers whose supervisor was killed outright: they finish what is in flight and exit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from modelpilot.config import Settings
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.conftest import free_port
from tests.processes import answering_pids, start, stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the kernel's PR_SET_PDEATHSIG is Linux's"),
]


def ended(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after up to ``timeout`` seconds (a zombie, which
    whoever adopted it has yet to reap, has ended)."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while any(running(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in processes if running(p)]


def test_workers_finish_and_exit_when_their_supervisor_is_killed(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """SIGKILLed, the supervisor left its workers and their monitoring processes running,
    adopted by init and answering on the port, which a new ``serve --workers`` then shared
    with them: two generations served at once. Now each worker drains as on SIGTERM: the
    request in flight is answered, and the workers and their children exit."""
    log = tmp_path / "server.log"
    running = start(registry, "--workers", "2", log=log)
    workers = [psutil.Process(pid) for pid in answering_pids(running.url, 2)]
    family = workers + [child for w in workers for child in w.children(recursive=True)]
    assert len(family) > len(workers)  # each worker's monitoring process
    answers: list[httpx.Response] = []

    def slow_call() -> None:
        answers.append(
            httpx.post(f"{running.url}/predict/slow", json={"data": [[2.0, 0.0]]}, timeout=30)
        )

    caller = threading.Thread(target=slow_call)
    try:
        caller.start()
        time.sleep(0.5)  # the request is now inside the model
        running.process.kill()
        running.process.wait(10)
        caller.join(30)
        left = ended(family, timeout=30)
        assert not left, f"still running after their supervisor died: {left}"
    finally:
        for process in family:  # whatever the outcome, nothing is left behind
            if process.is_running():
                process.kill()
        stop(running)
    assert answers and answers[0].status_code == 200
    assert int(answers[0].json()["predictions"][0]) in {w.pid for w in workers}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/v2/health/live", timeout=2)
    assert "Traceback" not in log.read_text()


def test_a_worker_whose_supervisor_died_as_it_started_does_not_serve(
    registry: Registry, slow_version: ModelVersion
) -> None:
    """The kernel signals a process only for a parent that dies after it asked: a worker
    whose supervisor died before that finds itself adopted, and exits without serving."""
    settings = Settings(registry=registry.location, host="127.0.0.1", http_port=free_port())
    code = (
        "import os, sys\n"
        "from modelpilot.server.supervisor import _worker\n"
        "gone = os.getppid() + 1  # not the parent: the one that started it is gone\n"
        "print(gone, flush=True)\n"
        "_worker(sys.argv[1], ['slow'], 'info', None, gone)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, settings.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    gone = int(done.stdout)
    assert f"worker 0 not starting: its supervisor (pid {gone}) is gone" in done.stderr
    assert "serving" not in done.stderr and "prctl" not in done.stderr
