"""Workers of ``serve --http-port 0``: one port, chosen by the supervisor, shared by all."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.processes import Server, answering_pids, serve_command, stop

pytestmark = pytest.mark.slow

SERVING = re.compile(r"serving slow on http://127\.0\.0\.1:(\d+)")


def start_on_port_zero(registry: Registry, log: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """``serve --workers 2`` on HTTP port 0, and the ports its workers said they serve on,
    once both said so."""
    command = serve_command(registry, 0, 0, "--workers", "2")
    command[command.index("--log-level") + 1] = "info"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        said = SERVING.findall(log.read_text())
        if len(said) == 2:
            return process, {int(port) for port in said}
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the workers did not start within 60 s:\n{log.read_text()}")


def test_workers_on_port_zero_share_the_one_port_printed(
    registry: Registry, slow_version: ModelVersion, tmp_path: Path
) -> None:
    """Each worker took a free port of its own (two workers, two ports): clients reached one
    of them. Now the supervisor picks the port, says it once, and both workers answer there."""
    log = tmp_path / "server.log"
    process, ports = start_on_port_zero(registry, log)
    try:
        assert len(ports) == 1, f"the workers serve on different ports: {ports}"
        (port,) = ports
        assert f"2 workers share http://127.0.0.1:{port}" in log.read_text()
        assert len(answering_pids(f"http://127.0.0.1:{port}", 2)) == 2
    finally:
        stop(Server(process, http=0, grpc=0))  # stop() only signals and waits for it
