"""Running the ``modelpilot`` command in process, as a user would type it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelpilot.cli.main import app

Run = Callable[..., Result]


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def run(registry_dir: Path) -> Run:
    """``run("models")`` runs ``modelpilot models --registry <tmp>``."""
    runner = CliRunner()

    def invoke(*args: str, registry: bool = True) -> Result:
        argv = [*args, "--registry", str(registry_dir)] if registry else list(args)
        return runner.invoke(app, argv, catch_exceptions=True)

    return invoke
