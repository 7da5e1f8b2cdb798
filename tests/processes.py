"""Real ``modelpilot serve`` processes for end-to-end tests, on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelpilot.registry.store import Registry
from tests.conftest import free_port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    http: int
    grpc: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"


def serve_command(registry: Registry, http: int, grpc: int, *extra: str) -> list[str]:
    """The ``modelpilot serve`` command line over ``registry`` on loopback ports."""
    return [
        sys.executable,
        "-m",
        "modelpilot",
        "serve",
        "--registry",
        registry.location,
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--log-level",
        "warning",
        *extra,
    ]


def start(
    registry: Registry,
    *extra: str,
    grace: float = 20,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Server:
    """Start ``modelpilot serve`` over ``registry`` and wait until it is ready; with ``log``,
    its log (standard error) goes to that file."""
    http, grpc = free_port(), free_port()
    env = {**os.environ, "MODELPILOT_SHUTDOWN_GRACE_SECONDS": str(grace), **(env or {})}
    command = serve_command(registry, http, grpc, *extra)
    if log is None:
        process = subprocess.Popen(command, env=env)
    else:
        with log.open("wb") as stderr:
            process = subprocess.Popen(command, env=env, stderr=stderr)
    server = Server(process, http, grpc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("server not ready within 60 s")


def stop(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


def answering_pids(url: str, wanted: int) -> set[int]:
    """The pids of the worker processes that answer at ``url`` (the test model ``slow`` tells
    its pid), once ``wanted`` of them have."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < wanted and time.monotonic() < deadline:
        # A new connection each time, so that the kernel may pick another worker.
        with httpx.Client(timeout=10) as client:
            answer = client.post(f"{url}/predict/slow", json={"data": [[0.0, 0.0]]})
        seen.add(int(answer.json()["predictions"][0]))
    assert len(seen) == wanted, seen
    return seen
