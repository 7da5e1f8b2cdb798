"""The registry's tables, the same on SQLite and PostgreSQL, and how stores create theirs."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_LOCK = 0x6D70_7363  # "mpsc"
"""PostgreSQL advisory lock key held while a store creates its tables."""


def create_tables(engine: Engine, tables: MetaData, *then: Callable[[Connection], None]) -> None:
    """Create what ``tables`` lacks (then run ``then``), safely from several processes at once.

    Worker processes open the same stores together. In a plain transaction each one reads the
    schema, finds a table missing and tries to write: on SQLite the later writers then fail at
    once with "database is locked" (a stale read cannot become a write, whatever the busy
    timeout). So the transaction takes the write lock up front (``BEGIN IMMEDIATE`` through the
    engines' ``modelpilot_write`` option) and, on PostgreSQL, an advisory lock: the others wait,
    then find the tables there.
    """
    with engine.execution_options(modelpilot_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        tables.create_all(conn)
        for step in then:
            step(conn)


metadata = MetaData()

models = Table(
    "mp_models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("description", Text, nullable=False, default=""),
)

versions = Table(
    "mp_versions",
    metadata,
    Column("model", String(128), ForeignKey("mp_models.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("flavor", String(32), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_name", String(255), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("signature", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("reference", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

aliases = Table(
    "mp_aliases",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["model", "version"], ["mp_versions.model", "mp_versions.version"]),
)

alias_history = Table(
    "mp_alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False, index=True),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=True),
    Column("previous", Integer, nullable=True),
    Column("action", String(16), nullable=False, default="set"),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

profile_arrays = Table(
    "mp_profile_arrays",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(["model", "version"], ["mp_versions.model", "mp_versions.version"]),
)
"""The numbers of each version's reference profile of format 2, in parts of at most
``profile_storage.PART_BYTES`` bytes (``profile_storage``)."""
