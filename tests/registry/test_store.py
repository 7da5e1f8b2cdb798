"""The registry on SQLite and PostgreSQL: versions, aliases, rollback, integrity, concurrency."""

from __future__ import annotations

import multiprocessing
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, null, select, update

from modelpilot.errors import (
    AliasNotFound,
    ArtifactError,
    BadRequest,
    Conflict,
    ModelNotFound,
    RegistryError,
    VersionNotFound,
)
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.registry import schema
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.refs import ModelRef, check_name
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.registry.store import Registry

SIGNATURE = Signature(
    inputs=(TensorSpec("input-0", "FP64", (-1, 2)),),
    outputs=(TensorSpec("predict", "FP64", (-1,)),),
    feature_names=("a", "b"),
)


def artifact(tmp_path: Path, content: bytes = b"model bytes") -> Path:
    path = tmp_path / f"model-{len(content)}-{content[:8].hex()}.bin"
    path.write_bytes(content)
    return path


def register(store: Registry, tmp_path: Path, name: str = "m", **kwargs: object) -> int:
    version = store.register_version(
        name,
        artifact(tmp_path),
        flavor="sklearn",
        signature=SIGNATURE,
        **kwargs,  # type: ignore[arg-type]
    )
    return version.version


def test_versions_count_up_and_keep_what_was_stored(store: Registry, tmp_path: Path) -> None:
    assert [register(store, tmp_path) for _ in range(3)] == [1, 2, 3]
    v2 = store.get_version("m", 2)
    assert (v2.model, v2.version, v2.flavor) == ("m", 2, "sklearn")
    assert v2.signature == SIGNATURE
    assert v2.artifact_name.startswith("model-") and v2.artifact_size == len(b"model bytes")
    assert v2.created_at.tzinfo is not None
    assert [v.version for v in store.list_versions("m")] == [1, 2, 3]
    assert store.latest("m").version == 3


def test_metadata_and_reference_profile_round_trip(store: Registry, tmp_path: Path) -> None:
    profile = ReferenceProfile.from_data([[1.0, 2.0], [3.0, 4.0]], feature_names=["a", "b"])
    version = store.register_version(
        "m",
        artifact(tmp_path),
        flavor="sklearn",
        signature=SIGNATURE,
        metadata={"auc": 0.91, "tags": ["x"]},
        reference=profile,
    )
    assert version.metadata == {"auc": 0.91, "tags": ["x"]}
    assert version.has_reference
    assert store.reference_profile("m", 1) == profile


def test_aliases_resolve_and_default_to_production_then_latest(
    store: Registry, tmp_path: Path
) -> None:
    register(store, tmp_path)
    register(store, tmp_path, aliases=["staging"])
    assert store.resolve("m").version == 2  # no production alias: latest
    assert store.set_alias("m", "production", 1) is None
    assert store.resolve("m").version == 1
    assert store.resolve(ModelRef.parse("m@staging")).version == 2
    assert store.resolve("m:2").version == 2
    assert store.aliases("m") == {"production": 1, "staging": 2}
    assert store.get_version("m", 1).aliases == ("production",)
    assert store.set_alias("m", "production", 2) == 1
    store.delete_alias("m", "staging")
    assert store.aliases("m") == {"production": 2}


def test_a_version_without_a_profile_says_so_whichever_null_it_holds(
    store: Registry, tmp_path: Path
) -> None:
    profile = ReferenceProfile.from_data([[1.0, 2.0], [3.0, 4.0]], feature_names=["a", "b"])
    register(store, tmp_path, reference=profile)
    register(store, tmp_path)  # written as JSON null
    register(store, tmp_path)
    with store._engine.begin() as conn:  # as SQL NULL, as an older writer might leave it
        conn.execute(
            update(schema.versions).where(schema.versions.c.version == 3), [{"reference": null()}]
        )
    assert [v.has_reference for v in store.list_versions("m")] == [True, False, False]
    assert [store.get_version("m", n).has_reference for n in (1, 2, 3)] == [True, False, False]


def test_a_reference_resolves_to_its_number_in_small_queries(
    store: Registry, tmp_path: Path
) -> None:
    register(store, tmp_path)
    register(store, tmp_path, aliases=["staging"])
    assert store.resolve_number(ModelRef("m")) == 2  # no production alias: the latest
    store.set_alias("m", "production", 1)
    assert store.resolve_number(ModelRef("m")) == 1
    assert store.resolve_number(ModelRef.parse("m@staging")) == 2
    assert store.resolve_number(ModelRef.parse("m:7")) == 7  # a number is taken as it is
    with pytest.raises(AliasNotFound):
        store.resolve_number(ModelRef.parse("m@canary"))
    with pytest.raises(ModelNotFound):
        store.resolve_number(ModelRef("nope"))


def test_rollback_follows_the_alias_history(store: Registry, tmp_path: Path) -> None:
    for _ in range(4):
        register(store, tmp_path)
    store.set_alias("m", "production", 1)
    store.set_alias("m", "production", 3)
    store.set_alias("m", "production", 4)
    assert store.rollback("m") == (4, 3)
    assert store.rollback("m") == (3, 1)
    with pytest.raises(Conflict, match="no earlier version"):
        store.rollback("m")


def test_an_alias_set_where_it_points_leaves_nothing_for_rollback_to_undo(
    store: Registry, tmp_path: Path
) -> None:
    """Set to 1, to 3, and to 3 again: a rollback goes back to 1, where the alias was, not
    to 2, where it never pointed."""
    for _ in range(3):
        register(store, tmp_path)
    store.set_alias("m", "canary", 1)
    store.set_alias("m", "canary", 3)
    assert store.set_alias("m", "canary", 3) == 3
    assert store.rollback("m", "canary") == (3, 1)
    with store._engine.connect() as conn:
        steps = conn.execute(
            select(schema.alias_history.c.version, schema.alias_history.c.previous)
            .where(schema.alias_history.c.alias == "canary")
            .order_by(schema.alias_history.c.id)
        ).all()
    assert [tuple(step) for step in steps] == [(1, None), (3, 1), (1, 3)]


def test_rollback_passes_over_steps_an_older_registry_recorded_that_moved_nothing(
    store: Registry, tmp_path: Path
) -> None:
    for _ in range(3):
        register(store, tmp_path)
    store.set_alias("m", "canary", 1)
    store.set_alias("m", "canary", 3)
    with store._engine.begin() as conn:  # as set_alias("m", "canary", 3) once recorded it
        conn.execute(
            schema.alias_history.insert().values(
                model="m",
                alias="canary",
                version=3,
                previous=3,
                action="set",
                changed_at=datetime.now(timezone.utc),
            )
        )
    assert store.rollback("m", "canary") == (3, 1)


def test_rollback_goes_to_no_version_the_alias_never_pointed_at(
    store: Registry, tmp_path: Path
) -> None:
    """Versions 1 and 2 never in production (an old experiment, a rejected candidate): once
    the history is used up, a rollback refuses rather than take the number before."""
    register(store, tmp_path)
    register(store, tmp_path)
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
    assert store.previous_targets("m") == []


def test_errors_name_what_exists(store: Registry, tmp_path: Path) -> None:
    register(store, tmp_path)
    register(store, tmp_path, name="other")
    with pytest.raises(
        ModelNotFound, match="no model named 'nope' in the registry; registered models: m, other"
    ):
        store.resolve("nope")
    with pytest.raises(VersionNotFound, match="has no version 5; it has version 1"):
        store.get_version("m", 5)
    with pytest.raises(AliasNotFound, match="has no alias 'staging'; its aliases: none"):
        store.resolve("m@staging")
    with pytest.raises(VersionNotFound):
        store.set_alias("m", "production", 9)
    with pytest.raises(BadRequest, match="invalid model name"):
        register(store, tmp_path, name="has space")
    # GET /v2/models/stats is every model's statistics: no model's metadata could be there.
    with pytest.raises(BadRequest, match="the model name 'stats' is reserved"):
        register(store, tmp_path, name="stats")
    with pytest.raises(BadRequest, match="may not be all digits"):
        store.set_alias("m", "123", 1)
    with pytest.raises(AliasNotFound):
        store.rollback("m")


def test_artifacts_are_checked_on_every_fetch(store: Registry, tmp_path: Path) -> None:
    register(store, tmp_path)
    version = store.get_version("m", 1)
    path = store.fetch_artifact(version)
    assert path.read_bytes() == b"model bytes"
    path.write_bytes(b"tampered!!!")
    with pytest.raises(ArtifactError, match="is corrupted"):
        store.fetch_artifact(version)
    path.unlink()
    with pytest.raises(ArtifactError, match="is missing"):
        store.fetch_artifact(version)


def test_registering_the_file_again_repairs_its_corrupted_artifact(
    store: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The error of a corrupted artifact says to register the model file again, but a stored
    file of the right size was kept as it was: the new version pointed at the same broken
    bytes. A byte flipped in place, the size unchanged, is what a bad disk does."""
    register(store, tmp_path)
    path = store.artifacts.path_for(store.get_version("m", 1).artifact_sha256)
    damaged = bytearray(path.read_bytes())
    damaged[3] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(ArtifactError, match="is corrupted"):
        store.fetch_artifact(store.get_version("m", 1))
    again = register(store, tmp_path)
    for version in (1, again):  # one file for both: both are whole again
        fetched = store.fetch_artifact(store.get_version("m", version))
        assert fetched.read_bytes() == b"model bytes"
    assert "the stored artifact" in caplog.text and "was corrupted" in caplog.text
    # A whole stored copy is kept: registering once more leaves the file untouched.
    stamp = path.stat().st_mtime_ns
    register(store, tmp_path)
    assert path.stat().st_mtime_ns == stamp


def test_a_failed_registration_leaves_no_version(store: Registry, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        store.register_version("m", tmp_path / "missing.bin", flavor="sklearn", signature=SIGNATURE)
    with pytest.raises(BadRequest):
        store.register_version(
            "m", artifact(tmp_path), flavor="sklearn", signature=SIGNATURE, aliases=["bad alias"]
        )
    assert store.list_models() == []


def test_list_models(store: Registry, tmp_path: Path) -> None:
    register(store, tmp_path, name="b")
    register(store, tmp_path, name="a", aliases=["production"])
    register(store, tmp_path, name="a")
    infos = store.list_models()
    assert [(i.name, i.latest_version, i.version_count, i.aliases) for i in infos] == [
        ("a", 2, 2, {"production": 1}),
        ("b", 1, 1, {}),
    ]


def _register_many(location: str, artifacts: str, source: str, count: int) -> list[int]:
    reg = Registry.open(location, Path(artifacts))
    try:
        return [
            reg.register_version(
                "shared", Path(source), flavor="sklearn", signature=SIGNATURE
            ).version
            for _ in range(count)
        ]
    finally:
        reg.close()


def test_concurrent_processes_never_share_a_version_number(location: str, tmp_path: Path) -> None:
    Registry.open(location, tmp_path / "artifacts").close()  # create the tables once
    source = artifact(tmp_path)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(
            _register_many,
            [(location, str(tmp_path / "artifacts"), str(source), 5)] * 4,
        )
    numbers = sorted(n for batch in results for n in batch)
    assert numbers == list(range(1, 21))


def _open_stores(location: str, artifacts: str, start: Any) -> None:
    start.wait(30)
    registry = Registry.open(location, Path(artifacts))
    InferenceLog(registry.companion_engine("inference-log")).close()
    registry.close()


def test_processes_opening_new_stores_at_once_all_succeed(location: str, tmp_path: Path) -> None:
    # Worker processes open the registry and the inference log together; on a fresh SQLite
    # file, all but the first once failed with "database is locked".
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=_open_stores, args=(location, str(tmp_path / "a"), start))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]


def test_postgres_needs_an_artifact_directory(postgres_location: str) -> None:
    with pytest.raises(RegistryError, match="MODELPILOT_ARTIFACTS"):
        Registry.open(postgres_location)


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot open the registry") as failed:
        Registry.open("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    message = str(failed.value)
    assert "Connection refused" in message  # the driver's reason, on one line
    assert "\n" not in message and "sqlalche.me" not in message
    with pytest.raises(RegistryError, match="unsupported registry URL"):
        Registry.open("mysql://x/y")


def test_another_process_can_open_the_registry_at_its_address(
    store: Registry, tmp_path: Path
) -> None:
    register(store, tmp_path, name="a")
    location, artifacts = store.address()
    again = Registry.open(location, Path(artifacts))
    try:
        assert [info.name for info in again.list_models()] == ["a"]
        assert again.artifacts.root == store.artifacts.root
    finally:
        again.close()


def test_the_address_keeps_the_password_that_the_location_hides(
    postgres_location: str, tmp_path: Path
) -> None:
    url = make_url(postgres_location).set(password="s3cret")  # trust auth ignores it
    registry = Registry.open(url.render_as_string(hide_password=False), tmp_path)
    try:
        assert "s3cret" in registry.address()[0] and "s3cret" not in registry.location
    finally:
        registry.close()


def _synchronous(engine: Any) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())
        return str(conn.exec_driver_sql("PRAGMA synchronous").scalar())


def test_the_inference_log_store_does_not_wait_for_the_disk_at_each_commit(
    location: str, tmp_path: Path
) -> None:
    registry = Registry.open(location, tmp_path / "artifacts")
    companion = registry.companion_engine("inference-log")
    try:
        if companion.dialect.name == "postgresql":
            assert _synchronous(companion) == "off"
            assert _synchronous(registry._engine) == "on"  # models and aliases still do
            # The location's own options (here its search_path) still apply.
            log = InferenceLog(companion)
            log.close()
            with companion.connect() as conn:
                schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
            assert schema is not None and schema.startswith("t_")
        else:
            assert _synchronous(companion) == "1"  # NORMAL, with the write-ahead log
            assert _synchronous(registry._engine) == "2"  # FULL
    finally:
        companion.dispose()
        registry.close()


@pytest.mark.parametrize("text", ["m:\u00b9", "m:\u0663", "m:0", "m:x"])
def test_a_version_must_be_a_number_in_ascii_digits(text: str) -> None:
    with pytest.raises(BadRequest, match="versions are 1, 2, 3"):
        ModelRef.parse(text)


@pytest.mark.parametrize("version", [2**31, 10**30, 0, -1])
def test_a_version_number_no_registry_could_hold_is_simply_not_there(
    store: Registry, tmp_path: Path, version: int
) -> None:
    register(store, tmp_path)
    with pytest.raises(VersionNotFound, match=f"has no version {version}; it has version 1"):
        store.get_version("m", version)
    with pytest.raises(VersionNotFound):
        store.reference_profile("m", version)
    with pytest.raises(VersionNotFound):
        store.resolve(ModelRef("m", version=version))


@pytest.mark.parametrize("name", ["iris\n", "a\x00b", "-iris", ""])
def test_a_name_with_a_final_newline_or_a_nul_is_not_a_name(name: str) -> None:
    with pytest.raises(BadRequest, match="use 1-128 letters"):
        check_name(name)
    assert check_name("iris-2.b_c") == "iris-2.b_c"


def test_only_a_registry_that_may_be_created_is_created(tmp_path: Path) -> None:
    """Opened to read, a location with no registry is an error that names it, and is left
    as it was: an empty registry made there would say that nothing is registered."""
    typo = tmp_path / "typo" / "registry"
    with pytest.raises(RegistryError, match=re.escape(f"no registry at {typo} (no such directory")):
        Registry.open(typo, create=False)
    assert not (tmp_path / "typo").exists()
    with pytest.raises(RegistryError, match=r"it has no registry\.db"):
        Registry.open(tmp_path, create=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RegistryError, match="no such file"):
        Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=False)
    assert list(tmp_path.iterdir()) == []
    Registry.open(typo).close()  # created, as registering does
    Registry.open(typo, create=False).close()
