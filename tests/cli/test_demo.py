"""``modelpilot demo`` end to end: a served model answering over REST and gRPC."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.errors import Conflict
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def demo(
    registry: Path, http_port: int | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``modelpilot demo`` on ``registry``, run in its parent directory, on free ports (or
    ``http_port``), with ``env`` on top of this environment, returning once it is done."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelpilot",
            "demo",
            "--registry",
            str(registry),
            "--http-port",
            str(http_port or free_port()),
            "--grpc-port",
            str(free_port()),
            "--no-keep-serving",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=registry.parent,
        env={**os.environ, **(env or {})},
    )


def test_demo_runs_twice_on_a_fresh_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = tmp_path / "registry"
    for expected_version in (1, 2):
        if expected_version == 1:
            proc = demo(registry)
        else:  # on a busy port: the demo serves elsewhere, and says where
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", 0))
                busy.listen()
                port = busy.getsockname()[1]
                proc = demo(registry, http_port=port)
            assert f"port {port} is busy; serving REST on 127.0.0.1:" in proc.stderr
        assert proc.returncode == 0, proc.stderr
        assert f"registered iris version {expected_version}" in proc.stderr
        assert "REST v2" in proc.stdout and "gRPC" in proc.stdout
        # What monitoring made of the scored rows: their labels, and the rows in the drift
        # window (the 30 watched and those of the calls before them), not an empty window.
        watched = re.search(
            r"accuracy on 30 labelled rows: [\d.]+ .*drift window: (\d+) rows",
            " ".join((proc.stdout + proc.stderr).split()),
        )
        assert watched and int(watched[1]) >= 30, proc.stdout + proc.stderr
        # --no-keep-serving: the server is down by the time the closing text is read.
        assert "ModelPilot is serving" not in proc.stdout
        assert "The demo's server has stopped" in proc.stdout
        http = re.search(r"REST +http://127\.0\.0\.1:(\d+)/", proc.stdout)
        grpc = re.search(r"gRPC +127\.0\.0\.1:(\d+) ", proc.stdout)
        assert http and grpc, proc.stdout
        assert expected_version == 1 or int(http[1]) != port
        assert (
            "Serve it again, where it was:\n  modelpilot serve --model iris --host 127.0.0.1 "
            f"--http-port {http[1]} --grpc-port {grpc[1]} --registry {registry}\n"
        ) in proc.stdout
        assert "curl -s http://127.0.0.1:" in proc.stdout
    reg = Registry.open(registry)
    try:
        assert reg.resolve("iris").version == 2
        assert reg.reference_profile("iris", 2) is not None
    finally:
        reg.close()
    # The closing text's predict command works as printed, where the demo ran.
    (line,) = [s for s in proc.stdout.splitlines() if s.startswith("  modelpilot predict ")]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, shlex.split(line)[1:])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert len(scored) == 30 and "predict" in scored.columns


def test_demo_leaves_a_model_it_did_not_make_as_it_was(
    tmp_path: Path, iris_model_path: Path
) -> None:
    """A user's own ``iris`` keeps its versions and its production alias (the demo moved
    that alias onto its own version, and servers followed): the demo takes ``iris-demo``."""
    registry = tmp_path / "registry"
    reg = Registry.open(registry)
    try:
        register_model(reg, "iris", iris_model_path, aliases=["production"])
    finally:
        reg.close()
    proc = demo(registry)
    assert proc.returncode == 0, proc.stderr
    assert "registered iris-demo version 1" in proc.stderr
    assert "modelpilot versions iris-demo" in proc.stdout
    reg = Registry.open(registry)
    try:
        assert [v.version for v in reg.list_versions("iris")] == [1]
        assert reg.aliases("iris") == {"production": 1}
        assert reg.aliases("iris-demo") == {"production": 1}
    finally:
        reg.close()


def test_demo_refuses_a_registry_whose_iris_models_are_not_its_own(
    tmp_path: Path, iris_model_path: Path
) -> None:
    registry = tmp_path / "registry"
    reg = Registry.open(registry)
    try:
        for name in ("iris", "iris-demo"):
            register_model(reg, name, iris_model_path, aliases=["production"])
    finally:
        reg.close()
    ports = ["--http-port", str(free_port()), "--grpc-port", str(free_port())]
    result = CliRunner().invoke(
        app, ["demo", "--registry", str(registry), *ports, "--no-keep-serving"]
    )
    assert isinstance(result.exception, Conflict), result.output
    assert "already holds models named iris and iris-demo that the demo did not register" in (
        str(result.exception)
    )
    assert "modelpilot demo --registry" in str(result.exception)
    reg = Registry.open(registry)
    try:
        assert [i.latest_version for i in reg.list_models()] == [1, 1]
    finally:
        reg.close()


def test_demo_with_monitoring_off_skips_watching_and_says_why(tmp_path: Path) -> None:
    """It ended in a traceback (the server's 404 for labels, tester t4)."""
    proc = demo(tmp_path / "registry", env={"MODELPILOT_MONITORING": "false"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    said = " ".join(proc.stderr.split())
    assert "5/5 skipped: monitoring is off (MODELPILOT_MONITORING=false)" in said
    assert "REST v2" in proc.stdout
