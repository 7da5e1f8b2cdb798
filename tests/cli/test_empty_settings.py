"""An optional path or URL set to nothing is unset: ``MODELPILOT_ARTIFACTS=`` (as a script or
a compose file passes it) was the current directory, where artifacts then landed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.config import Settings


@pytest.mark.parametrize("name", ["ARTIFACTS", "REDIS_URL", "RESULT_CACHE_DIR", "WORKER_DIR"])
def test_an_empty_optional_setting_is_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"MODELPILOT_{name}", "  ")
    assert getattr(Settings(), name.lower()) is None


def test_an_empty_artifacts_setting_keeps_artifacts_in_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iris_model_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MODELPILOT_ARTIFACTS", "")
    registry = tmp_path / "registry"
    result = CliRunner().invoke(
        app, ["register", "m", str(iris_model_path), "--registry", str(registry)]
    )
    assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran
    assert any(p.is_file() for p in (registry / "artifacts").rglob("*"))
