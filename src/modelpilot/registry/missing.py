"""What the registry says when something asked for is not there: the error, and what there is
instead (the registered models, a model's versions or aliases), so that a typo is seen at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from modelpilot.errors import AliasNotFound, ModelNotFound, NotFound, VersionNotFound, quoted
from modelpilot.registry import schema


def model_exists(conn: Connection, name: str) -> bool:
    query = select(schema.models.c.name).where(schema.models.c.name == name)
    return conn.execute(query).first() is not None


def version_row(conn: Connection, name: str, version: int, *columns: Any) -> Row[Any]:
    """``columns`` of ``name``'s ``version``, or the NotFound error that says why not."""
    if _storable(version):
        row = conn.execute(
            select(*columns).where(
                (schema.versions.c.model == name) & (schema.versions.c.version == version)
            )
        ).first()
        if row is not None:
            return row
    require_version(conn, name, version)
    raise AssertionError("unreachable: the version exists but was not found")


def require_version(conn: Connection, name: str, version: int) -> None:
    versions = (
        conn.execute(
            select(schema.versions.c.version)
            .where(schema.versions.c.model == name)
            .order_by(schema.versions.c.version)
        )
        .scalars()
        .all()
    )
    if not versions:
        raise model_not_found(conn, name)
    if version not in versions:
        raise VersionNotFound(
            f"model {quoted(name)} has no version {version}; it has {_ranges(versions)}"
        )


def model_not_found(conn: Connection, name: str) -> ModelNotFound:
    names = conn.execute(select(schema.models.c.name).order_by(schema.models.c.name))
    known = [n for n in names.scalars() if n != name]
    hint = f"; registered models: {', '.join(known[:20])}" if known else ""
    return ModelNotFound(f"no model named {quoted(name)} in the registry{hint}")


def alias_not_found(conn: Connection, name: str, alias: str) -> NotFound:
    if not model_exists(conn, name):
        # The model is what is missing, as for a version number: ModelNotFound, also in
        # the kind of error the metrics count.
        return model_not_found(conn, name)
    names = conn.execute(
        select(schema.aliases.c.alias).where(schema.aliases.c.model == name)
    ).scalars()
    known = ", ".join(sorted(names)) or "none"
    return AliasNotFound(f"model {quoted(name)} has no alias {quoted(alias)}; its aliases: {known}")


def _ranges(versions: Sequence[int]) -> str:
    if versions == list(range(versions[0], versions[-1] + 1)):
        return (
            f"version {versions[0]}"
            if len(versions) == 1
            else (f"versions {versions[0]}-{versions[-1]}")
        )
    return "versions " + ", ".join(map(str, versions))


MAX_VERSION = 2**31 - 1
"""The largest version number a registry holds (its version columns are 32-bit integers)."""


def _storable(version: int) -> bool:
    """Whether ``version`` could be in the registry at all: a larger number asked of the
    database would fail as an overflow (SQLite) or out of range (PostgreSQL), not be absent."""
    return 0 < version <= MAX_VERSION
