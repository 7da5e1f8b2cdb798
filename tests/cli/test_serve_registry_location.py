"""``serve`` on a registry location where there is none.

A mistyped path made an empty registry, said only that it had no models yet, and reported
ready, while the read commands refused the same path. A fresh start (an empty volume) still
gets an empty registry that serves the models registered later, said to be new; a path whose
parent is missing too is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.cli.serve_command import registry_to_create
from modelpilot.errors import RegistryError
from modelpilot.registry.store import Registry


def test_a_path_whose_parent_is_missing_is_refused(tmp_path: Path) -> None:
    typo = tmp_path / "regsitry" / "registry"
    result = CliRunner().invoke(
        app, ["serve", "--registry", str(typo), "--host", "127.0.0.1", "--http-port", "0"]
    )
    assert isinstance(result.exception, RegistryError)
    assert f"there is no registry at {typo}" in str(result.exception)
    assert "check --registry or MODELPILOT_REGISTRY" in str(result.exception)
    assert not typo.parent.exists()  # nothing made there


def test_a_new_registry_is_one_to_create_and_say_so(tmp_path: Path) -> None:
    fresh = tmp_path / "registry"
    assert registry_to_create(str(fresh)) == fresh
    tmp_path.joinpath("volume").mkdir()  # mounted empty
    assert registry_to_create(str(tmp_path / "volume")) == tmp_path / "volume"
    Registry.open(fresh).close()
    assert registry_to_create(str(fresh)) is None
    assert registry_to_create("postgresql://user@db/modelpilot") is None
    with pytest.raises(RegistryError, match=r"create .*regsitry first"):
        registry_to_create(str(tmp_path / "regsitry" / "registry"))
