"""The registry's tables, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

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
