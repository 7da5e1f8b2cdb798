"""``rollback`` moves an alias only to versions its history says it pointed at.

Once the history was used up, it took the version numbered before the current one, which
the alias had never pointed at: an old experiment or a rejected candidate went to production,
and the output read as an ordinary undo."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.errors import Conflict
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from tests.registry.test_store import register


def test_rollback_goes_to_no_version_the_alias_never_pointed_at(
    store: Registry, tmp_path: Path
) -> None:
    register(store, tmp_path)  # an old experiment
    register(store, tmp_path)  # a rejected candidate
    register(store, tmp_path, aliases=["production"])
    store.set_alias("m", "staging", 3)
    with pytest.raises(Conflict, match="no earlier version it pointed at"):
        store.rollback("m")
    with pytest.raises(Conflict, match="modelpilot alias m staging VERSION"):
        store.rollback("m", "staging")
    store.set_alias("m", "production", 1)
    assert store.rollback("m") == (1, 3)
    with pytest.raises(Conflict):
        store.rollback("m")
    assert store.resolve_number(ModelRef.parse("m@production")) == 3
    assert store.previous_targets("m") == []  # where a server would start: agreed


def test_the_command_refuses_once_the_history_is_used_up(
    tmp_path: Path, iris_model_path: Path
) -> None:
    registry = str(tmp_path / "registry")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, [*args, "--registry", registry])
        return result.exit_code, f"{result.output}{result.exception or ''}"

    run("register", "fraud", str(iris_model_path))
    run("register", "fraud", str(iris_model_path), "--alias", "production")
    code, said = run("rollback", "fraud")
    assert code != 0
    assert "fraud@production points at version 2 and there is no earlier version" in said
    assert "version 2 -> 1" not in said
