"""Fixtures of the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelpilot.cli.main import app
from modelpilot.config import Settings
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run

SCORER = """
class Model:
    def predict(self, x):
        return x[:, 0] * {factor}
"""
"""A ``.py`` model whose answer tells its version: the first column times the version."""


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run("models")`` runs ``modelpilot models --registry <tmp>``, in process, on a registry
    of its own (``cli-registry``: the ``registry`` fixture's folder is ``registry``)."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        argv = [*args, "--registry", str(tmp_path / "cli-registry")]
        return runner.invoke(app, argv, catch_exceptions=True)

    return invoke


async def started(registry: Registry, *refs: str, **overrides: object) -> InferenceEngine:
    """An engine serving ``refs`` (every model when none) of ``registry``, started; stopped
    again if its start fails."""
    settings = Settings(registry=registry.location, **overrides)  # type: ignore[arg-type]
    engine = InferenceEngine(registry, settings, [ModelRef.parse(r) for r in refs])
    try:
        await engine.start()
    except BaseException:
        await engine.stop()
        raise
    return engine


def register_scorer(registry: Registry, tmp_path: Path, version: int) -> ModelVersion:
    """``scorer`` version ``version`` (``SCORER``), registered as the next version."""
    path = tmp_path / f"scorer_v{version}.py"
    path.write_text(SCORER.format(factor=version))
    return register_model(registry, "scorer", path, flavor="python")


def corrupt(registry: Registry, mv: ModelVersion) -> str:
    """Spoil ``mv``'s stored artifact; what it held."""
    stored = registry.artifacts.path_for(mv.artifact_sha256)
    held = stored.read_text()
    stored.write_text(held + "# tampered\n")
    return held
