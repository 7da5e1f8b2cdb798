"""``rollback`` moves an alias only to versions its history says it pointed at: the command
(the registry's own rollback is tested in test_store.py).

Once the history was used up, it took the version numbered before the current one, which
the alias had never pointed at: an old experiment or a rejected candidate went to production,
and the output read as an ordinary undo."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modelpilot.cli.main import app


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
