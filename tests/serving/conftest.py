"""Fixtures of the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelpilot.cli.main import app
from tests.cli.conftest import Run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run("models")`` runs ``modelpilot models --registry <tmp>``, in process, on a registry
    of its own (``cli-registry``: the ``registry`` fixture's folder is ``registry``)."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        argv = [*args, "--registry", str(tmp_path / "cli-registry")]
        return runner.invoke(app, argv, catch_exceptions=True)

    return invoke
