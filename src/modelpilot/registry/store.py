"""The registry: named models, immutable numbered versions, aliases, on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Text, cast, func, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from modelpilot.errors import (
    Conflict,
    RegistryError,
    RegistryUnavailable,
)
from modelpilot.registry import missing, schema
from modelpilot.registry.artifacts import ArtifactStore
from modelpilot.registry.database import WRITE_OPTION, companion_engine, upsert
from modelpilot.registry.locations import connect
from modelpilot.registry.outage import Outage, cause, is_outage
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.profile_storage import (
    StoredProfileError,
    read_arrays,
    read_stored,
    stored_form,
    write_arrays,
)
from modelpilot.registry.refs import PRODUCTION, ModelRef, check_name, check_new_name
from modelpilot.registry.signature import Signature
from modelpilot.registry.types import ModelInfo, ModelVersion

logger = logging.getLogger(__name__)

VERSION_COLUMNS = (
    *(column for column in schema.versions.c if column.name != "reference"),
    (func.coalesce(cast(schema.versions.c.reference, Text), "null") != "null").label(
        "has_reference"
    ),
)
"""A version's row without its reference profile, which only ``reference_profile`` reads:
decoded with every lookup (some kilobytes of JSON), it was most of the cost of resolving a
reference, which a server does for every served model every ``alias_refresh_seconds``. A
version registered without one holds SQL NULL or JSON ``null``."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every one we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Registry:
    """Models and their versions, in one database, with artifacts in an ``ArtifactStore``.

    Versions are immutable: nothing here changes a version once written. Registration and
    alias moves are single transactions, and version numbers are allocated under a lock on the
    model (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so that two
    processes registering at once never get the same number. Methods are synchronous and
    thread-safe; async callers run them in a thread.
    """

    def __init__(self, engine: Engine, artifacts: ArtifactStore, location: str) -> None:
        self._engine = engine
        self.artifacts = artifacts
        self.location = location
        self._outage = Outage(logger)
        try:
            schema.create_tables(engine, schema.metadata)
        except SQLAlchemyError as exc:
            # The driver's own words, on one line, without SQLAlchemy's wrapping and link.
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise RegistryError(f"cannot open the registry at {location}: {reason}") from exc

    @classmethod
    def open(
        cls, location: str | Path, artifacts: Path | None = None, *, create: bool = True
    ) -> Registry:
        """Open a registry directory or database URL, creating it if needed and ``create``
        (see ``locations.connect``)."""
        return cls(*connect(location, artifacts, create=create))

    def close(self) -> None:
        self._engine.dispose()

    def address(self) -> tuple[str, str]:
        """What ``Registry.open`` takes to open this registry again in another process.

        A database URL (with its password, unlike ``location``) and the artifacts directory.
        """
        url = self._engine.url
        if url.get_backend_name() == "postgresql":
            return url.render_as_string(hide_password=False), str(self.artifacts.root)
        return f"sqlite:///{url.database}", str(self.artifacts.root)

    def companion_engine(self, name: str) -> Engine:
        """A database for another store that lives with this registry (the inference log).

        With PostgreSQL it is the same database; with SQLite, a file called ``name.db`` next
        to the registry's, so that heavy logging never holds the registry's write lock.

        The companion does not wait for the disk at each commit (PostgreSQL's
        ``synchronous_commit=off``, SQLite's ``synchronous=NORMAL`` with its write-ahead log):
        a crash of the process loses nothing committed, a crash of the machine may lose the
        last commits (never the database), and the log commits about once a second.
        """
        return companion_engine(self._engine.url, name)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise self._failed(exc) from exc
        self._answered()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise self._failed(exc) from exc
        self._answered()

    def _failed(self, exc: OperationalError) -> RegistryError:
        """What a read or write the database failed raises: ``_unreachable`` if it is out of
        reach; else (a table missing from a SQLite file, say) a RegistryError that says why."""
        if is_outage(exc):
            return self._unreachable(exc)
        return RegistryError(f"the registry at {self.location} failed: {cause(exc)}")

    def _unreachable(self, exc: OperationalError) -> RegistryUnavailable:
        """What a read or write that found the database out of reach raises: unavailable
        for now (503, gRPC UNAVAILABLE), not a failure of the server (a 500 with the
        driver's words, the database's host and port and SQLAlchemy's help link, which
        clients and proxies do not retry). Where and why go to the log, once a minute while
        it lasts (an alias refresh every 2 s logged it 10 times in a 20-s outage)."""
        self._outage.failed(
            exc, "the registry at %s does not answer: %s", self.location, cause(exc)
        )
        return RegistryUnavailable(
            "the model registry does not answer for now (its database is out of reach); "
            "retry in a few seconds (the log says which database, and why)"
        )

    def _answered(self) -> None:
        """Say once that the registry answers again, after an outage."""
        ended = self._outage.over()
        if ended is not None:
            logger.info(
                "the registry at %s answers again, after %.0f s (%d reads and writes failed)",
                self.location,
                ended.seconds,
                ended.failures,
            )

    def _lock_model(self, conn: Connection, name: str, create: bool) -> None:
        """Make sure the model row exists (if ``create``) and hold its lock until commit."""
        if create:
            insert = upsert(conn, schema.models).values(
                name=name, created_at=_now(), description=""
            )
            conn.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
        query = select(schema.models.c.name).where(schema.models.c.name == name)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            raise missing.model_not_found(conn, name)

    # -- writing -------------------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        artifact: Path,
        *,
        flavor: str,
        signature: Signature,
        metadata: dict[str, Any] | None = None,
        reference: ReferenceProfile | None = None,
        aliases: Sequence[str] = (),
    ) -> ModelVersion:
        """Store ``artifact`` and record it as the model's next version."""
        check_new_name(name)
        for alias in aliases:
            check_name(alias, "alias")
        artifact = Path(artifact)
        # The file goes in first: content-addressed, so a crash before the commit below
        # leaves an unreferenced blob, never a version without its artifact.
        sha, size = self.artifacts.put(artifact)
        stored, arrays = stored_form(reference) if reference else (None, b"")
        for attempt in range(5):
            try:
                with self._write() as conn:
                    self._lock_model(conn, name, create=True)
                    latest = conn.execute(
                        select(func.max(schema.versions.c.version)).where(
                            schema.versions.c.model == name
                        )
                    ).scalar()
                    version = (latest or 0) + 1
                    conn.execute(
                        schema.versions.insert().values(
                            model=name,
                            version=version,
                            flavor=flavor,
                            artifact_sha256=sha,
                            artifact_name=artifact.name,
                            artifact_size=size,
                            signature=signature.to_dict(),
                            metadata=dict(metadata or {}),
                            reference=stored,
                            created_at=_now(),
                        )
                    )
                    write_arrays(conn, name, version, arrays)
                    for alias in aliases:
                        self._point(conn, name, alias, version)
                break
            except IntegrityError:
                # Only reachable if another writer slipped past the lock; take the next number.
                if attempt == 4:
                    raise
        logger.info("registered %s:%d (%s, %s)", name, version, flavor, sha[:12])
        return self.get_version(name, version)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns where it pointed before (None if new)."""
        check_name(alias, "alias")
        with self._write() as conn:
            self._lock_model(conn, name, create=False)
            missing.require_version(conn, name, version)
            return self._point(conn, name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        with self._write() as conn:
            self._lock_model(conn, name, create=False)
            previous = self._alias_target(conn, name, alias)
            if previous is None:
                raise missing.alias_not_found(conn, name, alias)
            conn.execute(
                schema.aliases.delete().where(
                    (schema.aliases.c.model == name) & (schema.aliases.c.alias == alias)
                )
            )
            conn.execute(
                schema.alias_history.insert().values(
                    model=name,
                    alias=alias,
                    version=None,
                    previous=previous,
                    action="delete",
                    changed_at=_now(),
                )
            )

    def rollback(self, name: str, alias: str = PRODUCTION) -> tuple[int, int]:
        """Move ``alias`` back to where it pointed before; returns (from, to).

        Only to a version its history says it pointed at (``previous_targets``, where a
        server starts when the alias's version fails to load): once that is used up, it
        refuses. It took the version numbered before the current one then, which the alias
        had never pointed at: an old experiment or a rejected candidate went to production
        as if it were an undo."""
        with self._write() as conn:
            self._lock_model(conn, name, create=False)
            current = self._alias_target(conn, name, alias)
            if current is None:
                raise missing.alias_not_found(conn, name, alias)
            targets = self._history_targets(conn, name, alias, current)
            if not targets:
                raise Conflict(
                    f"{name}@{alias} points at version {current} and there is no earlier version "
                    "it pointed at to roll back to; to point it at another version: "
                    f"modelpilot alias {name} {alias} VERSION"
                )
            target = targets[0]
            self._point(conn, name, alias, target, action="rollback")
            return current, target

    def previous_targets(self, name: str, alias: str = PRODUCTION) -> list[int]:
        """Where ``rollback`` would move ``alias`` back to, once, twice and so on, as its
        history says, newest first. Reads only: what a
        server starts on when the version the alias points at fails to load, and the one
        before it too (an alias moved to two broken versions in a row)."""
        with self._read() as conn:
            current = self._alias_target(conn, name, alias)
            if current is None:
                raise missing.alias_not_found(conn, name, alias)
            return self._history_targets(conn, name, alias, current)

    def _point(
        self, conn: Connection, name: str, alias: str, version: int, action: str = "set"
    ) -> int | None:
        """Point ``alias`` at ``version`` and record the move; returns where it pointed.

        Setting it where it already points changes nothing and records nothing: the history
        is what a rollback undoes, and a step from a version to itself would have it go back
        to that same version (and then to a version the alias never pointed at)."""
        previous = self._alias_target(conn, name, alias)
        if previous == version:
            return previous
        values = {"version": version, "updated_at": _now()}
        if previous is None:
            conn.execute(schema.aliases.insert().values(model=name, alias=alias, **values))
        else:
            conn.execute(
                schema.aliases.update()
                .where((schema.aliases.c.model == name) & (schema.aliases.c.alias == alias))
                .values(**values)
            )
        conn.execute(
            schema.alias_history.insert().values(
                model=name,
                alias=alias,
                version=version,
                previous=previous,
                action=action,
                changed_at=_now(),
            )
        )
        return previous

    # -- reading -------------------------------------------------------------------------------

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._read() as conn:
            row = missing.version_row(conn, name, version, *VERSION_COLUMNS)
            return self._version(conn, row._mapping)

    def latest(self, name: str) -> ModelVersion:
        with self._read() as conn:
            latest = self._latest_number(conn, name)
        return self.get_version(name, latest)

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a reference means: ``NAME`` (production, else latest), ``:N``, ``@A``."""
        if isinstance(ref, str):
            ref = ModelRef.parse(ref)
        return self.get_version(ref.name, self.resolve_number(ref))

    def resolve_number(self, ref: ModelRef) -> int:
        """The number of the version ``ref`` means, in one or two small queries: what a
        server asks every ``alias_refresh_seconds`` of each model it serves, reading the
        whole version only when the number moved."""
        if ref.version is not None:
            return ref.version
        alias = ref.alias or PRODUCTION
        with self._read() as conn:
            target = self._alias_target(conn, ref.name, alias)
            if target is not None:
                return target
            if ref.alias is not None:
                raise missing.alias_not_found(conn, ref.name, alias)
            return self._latest_number(conn, ref.name)

    def list_models(self) -> list[ModelInfo]:
        with self._read() as conn:
            stats = {
                row.model: (int(row.latest), int(row.n))
                for row in conn.execute(
                    select(
                        schema.versions.c.model,
                        func.max(schema.versions.c.version).label("latest"),
                        func.count().label("n"),
                    ).group_by(schema.versions.c.model)
                )
            }
            aliases: dict[str, dict[str, int]] = {}
            for row in conn.execute(select(schema.aliases)):
                aliases.setdefault(row.model, {})[row.alias] = row.version
            return [
                ModelInfo(
                    name=row.name,
                    created_at=_utc(row.created_at),
                    latest_version=stats.get(row.name, (None, 0))[0],
                    version_count=stats.get(row.name, (None, 0))[1],
                    aliases=dict(sorted(aliases.get(row.name, {}).items())),
                )
                for row in conn.execute(select(schema.models).order_by(schema.models.c.name))
            ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._read() as conn:
            rows = conn.execute(
                select(*VERSION_COLUMNS)
                .where(schema.versions.c.model == name)
                .order_by(schema.versions.c.version)
            ).all()
            if not rows:
                raise missing.model_not_found(conn, name)
            return [self._version(conn, row._mapping) for row in rows]

    def aliases(self, name: str) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(schema.aliases.c.alias, schema.aliases.c.version)
                .where(schema.aliases.c.model == name)
                .order_by(schema.aliases.c.alias)
            ).all()
            if not rows and not missing.model_exists(conn, name):
                raise missing.model_not_found(conn, name)
            return {row.alias: row.version for row in rows}

    def reference_profile(self, name: str, version: int) -> ReferenceProfile | None:
        """The version's reference profile (None if registered without one), in whichever
        format it was stored (see ``profile_storage``)."""
        with self._read() as conn:
            row = missing.version_row(conn, name, version, schema.versions.c.reference)
            if not row.reference:
                return None
            arrays = read_arrays(conn, name, version, row.reference)
        try:
            return read_stored(row.reference, arrays)
        except StoredProfileError as exc:
            raise RegistryError(
                f"cannot read the reference profile of {name}:{version}: {exc}"
            ) from exc

    def fetch_artifact(self, version: ModelVersion) -> Path:
        """The version's artifact file, after checking its sha256."""
        return self.artifacts.fetch(version.artifact_sha256)

    # -- helpers -----------------------------------------------------------------------------

    def _version(self, conn: Connection, row: Any) -> ModelVersion:
        aliases = conn.execute(
            select(schema.aliases.c.alias)
            .where(
                (schema.aliases.c.model == row["model"])
                & (schema.aliases.c.version == row["version"])
            )
            .order_by(schema.aliases.c.alias)
        ).scalars()
        return ModelVersion(
            model=row["model"],
            version=row["version"],
            flavor=row["flavor"],
            artifact_sha256=row["artifact_sha256"],
            artifact_name=row["artifact_name"],
            artifact_size=row["artifact_size"],
            signature=Signature.from_dict(row["signature"]),
            metadata=dict(row["metadata"] or {}),
            created_at=_utc(row["created_at"]),
            has_reference=bool(row["has_reference"]),
            aliases=tuple(aliases),
        )

    def _latest_number(self, conn: Connection, name: str) -> int:
        latest = conn.execute(
            select(func.max(schema.versions.c.version)).where(schema.versions.c.model == name)
        ).scalar()
        if latest is None:
            raise missing.model_not_found(conn, name)
        return int(latest)

    def _history_targets(self, conn: Connection, name: str, alias: str, current: int) -> list[int]:
        """Where ``alias``, now at ``current``, pointed before each assignment still in force,
        newest first, by its history: the versions successive rollbacks would go to."""
        history = conn.execute(
            select(
                schema.alias_history.c.version,
                schema.alias_history.c.previous,
                schema.alias_history.c.action,
            )
            .where((schema.alias_history.c.model == name) & (schema.alias_history.c.alias == alias))
            .order_by(schema.alias_history.c.id)
        ).all()
        # The history is an undo stack: a rollback undoes the newest assignment still in
        # force, so that rolling back twice goes back two steps, not back and forth.
        # An entry that moved nothing (the alias set to where it already pointed, which
        # registries before this rule recorded) is no step to go back over.
        stack: list[tuple[int | None, int | None]] = []
        for version, previous, action in history:
            if version == previous:
                continue
            if action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append((version, previous))
        targets: list[int] = []
        at = current
        for version, previous in reversed(stack):
            if version != at or previous is None or previous == at or previous in targets:
                break
            targets.append(previous)
            at = previous
        return targets

    def _alias_target(self, conn: Connection, name: str, alias: str) -> int | None:
        return conn.execute(
            select(schema.aliases.c.version).where(
                (schema.aliases.c.model == name) & (schema.aliases.c.alias == alias)
            )
        ).scalar()
