"""Registries on both backends: SQLite in a temporary directory, and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpilot.registry.store import Registry


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "registry")
    return str(request.getfixturevalue("postgres_location"))


@pytest.fixture
def store(location: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each backend (artifacts in a temporary directory)."""
    reg = Registry.open(location, tmp_path / "artifacts")
    yield reg
    reg.close()
