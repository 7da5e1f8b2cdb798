"""Where a registry lives: a directory, a SQLite file or a PostgreSQL database, opened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from modelpilot.errors import RegistryError
from modelpilot.registry.artifacts import ArtifactStore
from modelpilot.registry.database import postgres_engine, sqlite_engine


def connect(
    location: str | Path, artifacts: Path | None = None, *, create: bool = True
) -> tuple[Engine, ArtifactStore, str]:
    """The database engine, the artifact store and the shown location of the registry at
    ``location``: a directory (SQLite and files), ``sqlite:///PATH`` or a PostgreSQL URL,
    created where needed if ``create``.

    Without ``create``, a registry directory or SQLite file that does not exist is a
    RegistryError rather than a new, empty registry: a command that only reads or moves what
    is registered was given a wrong location (a typo, another working directory), and an
    empty registry would answer it as if nothing were registered there."""
    text = str(location)
    if text.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        return _postgres(text, artifacts)
    if text.startswith("sqlite:///"):
        db = Path(text.removeprefix("sqlite:///"))
        if not create and not db.is_file():
            raise _no_registry(text, f"no such file: {db}")
        root = artifacts or db.parent / "artifacts"
        return sqlite_engine(db), ArtifactStore(root), str(db)
    if "://" in text:
        raise RegistryError(
            f"unsupported registry URL {text!r}: use a directory, sqlite:///PATH or "
            "postgresql://USER@HOST/DB"
        )
    directory = Path(text)
    if not create and not (directory / "registry.db").is_file():
        why = "it has no registry.db" if directory.is_dir() else "no such directory"
        if not directory.is_absolute():
            why += f": {directory.absolute()}"
        raise _no_registry(text, why)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(f"cannot create the registry directory {directory}: {exc}") from exc
    store = ArtifactStore(artifacts or directory / "artifacts")
    return sqlite_engine(directory / "registry.db"), store, str(directory)


def _postgres(text: str, artifacts: Path | None) -> tuple[Engine, ArtifactStore, str]:
    if artifacts is None:
        raise RegistryError(
            "a PostgreSQL registry keeps artifacts in a shared directory: set "
            "MODELPILOT_ARTIFACTS or pass --artifacts"
        )
    engine = postgres_engine(text)
    return engine, ArtifactStore(artifacts), engine.url.render_as_string(hide_password=True)


def _no_registry(location: str, why: str) -> RegistryError:
    return RegistryError(
        f"there is no registry at {location} ({why}): check --registry or "
        "MODELPILOT_REGISTRY; `modelpilot register` creates a registry where it is told to"
    )
