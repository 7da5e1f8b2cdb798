"""``modelpilot demo`` end to end: a served model answering over REST and gRPC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelpilot.registry.store import Registry
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_demo_runs_twice_on_a_fresh_registry(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    for expected_version in (1, 2):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelpilot",
                "demo",
                "--registry",
                str(registry),
                "--http-port",
                str(free_port()),
                "--grpc-port",
                str(free_port()),
                "--no-keep-serving",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"registered iris version {expected_version}" in proc.stderr
        assert "REST v2" in proc.stdout and "gRPC" in proc.stdout
        assert "ModelPilot is serving" in proc.stdout
        assert "curl -s http://127.0.0.1:" in proc.stdout
    reg = Registry.open(registry)
    try:
        assert reg.resolve("iris").version == 2
        assert reg.reference_profile("iris", 2) is not None
    finally:
        reg.close()
