"""Registries on both backends: SQLite in a temporary directory, and the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpilot.registry.store import Registry
from tests.services import require_postgres


@pytest.fixture
def postgres_location() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


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
