"""A server started while an alias points at a version that fails to load starts on the
version the alias pointed at before, as a stalled rollout, the way a running server stays on
it; and the registry says where that is, on SQLite and PostgreSQL alike, changing nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from modelpilot.errors import AliasNotFound, ArtifactError
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry import schema
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.engine import InferenceEngine
from tests.monitoring.conftest import monitored
from tests.serving.conftest import corrupt, register_scorer, started


def rolled_out_broken(registry: Registry, tmp_path: Path, alias: str) -> tuple[ModelVersion, str]:
    """``scorer`` version 1 at ``alias``, then ``alias`` moved to a version 2 whose artifact
    is corrupted; version 2, and what its artifact held."""
    register_scorer(registry, tmp_path, 1)
    broken = register_scorer(registry, tmp_path, 2)
    registry.set_alias("scorer", alias, 1)
    held = corrupt(registry, broken)
    registry.set_alias("scorer", alias, 2)
    return broken, held


async def answered_by(engine: InferenceEngine, version: str) -> None:
    """Ask ``scorer`` until version ``version`` answers (for at most 10 s)."""
    for _ in range(200):
        response = await engine.infer("scorer", request_from_rows([[3.0]]))
        if response.model_version == version:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"scorer never answered with version {version}")


async def test_a_restart_serves_the_version_before_and_says_the_rollout_stalled(
    registry: Registry, iris_version: ModelVersion, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The restarted server exited 1 on scorer:2 ("artifact ... is corrupted"), serving
    neither scorer:1, which the running server had kept serving, nor iris."""
    broken, held = rolled_out_broken(registry, tmp_path, "production")
    with caplog.at_level(logging.ERROR, logger="modelpilot.serving.served"):
        engine = await started(registry, alias_refresh_seconds=0.1)
    try:
        assert engine.served.all_loaded()
        response = await engine.infer("scorer", request_from_rows([[3.0]]))
        assert response.model_version == "1"
        assert (await engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]]))).outputs
        version, reason = engine.served.stalled["scorer"]
        assert version.key == broken.key
        assert reason.startswith(f"scorer:2: artifact {broken.artifact_sha256[:12]} is corrupted")
        (record,) = [r for r in caplog.records if "pointed before" in r.getMessage()]
        assert record.getMessage().startswith(
            "serving scorer:1, where scorer@production pointed before: scorer:2 did not load "
            "(trying again every 0.1 s): scorer:2: artifact"
        )

        # Tried again, as a running server does: once version 2 loads, traffic moves to it.
        registry.artifacts.path_for(broken.artifact_sha256).write_text(held)
        await answered_by(engine, "2")
        assert engine.served.stalled == {}
        assert engine.pool.is_pinned(broken.key)
    finally:
        await engine.stop()


async def test_the_rollout_stalled_alert_holds_until_the_alias_moves_on(
    registry: Registry, tmp_path: Path
) -> None:
    rolled_out_broken(registry, tmp_path, "production")
    async with monitored(registry, alias_refresh_seconds=0) as served:
        client, engine = served.client, served.engine
        answer = await client.post("/predict/scorer", json={"data": [[3.0]]})
        assert answer.status_code == 200 and answer.json()["version"] == "1"
        served.monitor.flush()
        (alert,) = (await client.get("/api/alerts")).json()["active"]
        assert (alert["rule"], alert["model"]) == ("rollout_stalled", "scorer:2")
        assert alert["message"].startswith("scorer stays on its previous version: scorer:2: ")
        metrics = (await client.get("/metrics")).text
        assert 'modelpilot_rollout_stalled{model="scorer",version="2"} 1.0' in metrics

        register_scorer(registry, tmp_path, 3)
        registry.set_alias("scorer", "production", 3)  # the alias moves on to one that loads
        await answered_by(engine, "3")
        assert engine.served.stalled == {}
        served.monitor.flush()
        assert (await client.get("/api/alerts")).json()["active"] == []


async def test_an_alias_other_than_production_starts_on_its_own_version_before(
    registry: Registry, tmp_path: Path
) -> None:
    for version in (1, 2, 3):
        register_scorer(registry, tmp_path, version)
    registry.set_alias("scorer", "production", 1)
    registry.set_alias("scorer", "staging", 2)
    corrupt(registry, registry.get_version("scorer", 3))
    registry.set_alias("scorer", "staging", 3)
    engine = await started(registry, "scorer@staging")
    try:
        assert (await engine.infer("scorer", request_from_rows([[3.0]]))).model_version == "2"
        assert engine.served.stalled["scorer"][0].version == 3
    finally:
        await engine.stop()


async def test_the_version_before_is_the_one_a_rollback_moves_to(
    registry: Registry, tmp_path: Path
) -> None:
    """Rolled back from 3 to 2, which does not load: the version before is 1, where a second
    rollback goes, not 3, which the rollback moved away from."""
    for version in (1, 2, 3):
        register_scorer(registry, tmp_path, version)
    for version in (1, 2, 3):
        registry.set_alias("scorer", "production", version)
    corrupt(registry, registry.get_version("scorer", 2))
    assert registry.rollback("scorer") == (3, 2)
    engine = await started(registry)
    try:
        assert (await engine.infer("scorer", request_from_rows([[3.0]]))).model_version == "1"
        assert engine.served.stalled["scorer"][0].version == 2
    finally:
        await engine.stop()


async def test_two_broken_versions_in_a_row_start_on_the_one_before_both(
    registry: Registry, iris_version: ModelVersion, tmp_path: Path
) -> None:
    """The alias moved 1 -> 2 -> 3, neither of which loads: a running server stays on 1, and
    a restarted one looked only one step back, at 2, and did not start at all."""
    for version in (1, 2, 3):
        register_scorer(registry, tmp_path, version)
    for version in (1, 2, 3):
        registry.set_alias("scorer", "production", version)
    for version in (2, 3):
        corrupt(registry, registry.get_version("scorer", version))
    assert registry.previous_targets("scorer") == [2, 1]
    engine = await started(registry)
    try:
        assert (await engine.infer("scorer", request_from_rows([[3.0]]))).model_version == "1"
        assert (await engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]]))).outputs
        assert engine.served.stalled["scorer"][0].version == 3
    finally:
        await engine.stop()
    corrupt(registry, registry.get_version("scorer", 1))
    with pytest.raises(ArtifactError, match="nor do versions 2, 1, where it pointed before"):
        await started(registry)


async def test_a_version_before_that_fails_too_is_the_error_and_its_way_out(
    registry: Registry, iris_version: ModelVersion, tmp_path: Path
) -> None:
    broken, _ = rolled_out_broken(registry, tmp_path, "production")
    first = registry.get_version("scorer", 1)
    corrupt(registry, first)
    with pytest.raises(ArtifactError) as info:
        await started(registry)
    message = str(info.value)
    assert message.startswith(f"scorer:2: artifact {broken.artifact_sha256[:12]} is corrupted")
    assert (
        "Register the model file again. scorer@production points at version 2, which does not "
        "load, nor does version 1, where it pointed before (scorer:1: artifact "
        f"{first.artifact_sha256[:12]} is corrupted"
    ) in message
    assert message.endswith(
        "Register the model file again). Point the alias at a version that loads with "
        "`modelpilot alias scorer production VERSION`, or serve the other models without it: "
        "--model iris."
    )


# -- the registry: where the alias pointed before ------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each backend (artifacts in a temporary directory)."""
    if request.param == "sqlite":
        location = str(tmp_path / "registry")
    else:
        location = str(request.getfixturevalue("postgres_location"))
    reg = Registry.open(location, tmp_path / "artifacts")
    yield reg
    reg.close()


def history_rows(store: Registry) -> int:
    with store._engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.alias_history)).scalar())


def test_previous_targets_read_where_a_rollback_would_go_and_changes_nothing(
    store: Registry, tmp_path: Path
) -> None:
    for version in (1, 2, 3, 4):
        register_scorer(store, tmp_path, version)
    store.set_alias("scorer", "production", 1)
    assert store.previous_targets("scorer") == []  # created there: no version before
    store.set_alias("scorer", "production", 3)
    store.set_alias("scorer", "production", 4)
    rows = history_rows(store)
    assert store.previous_targets("scorer") == [3, 1]
    assert store.previous_targets("scorer") == [3, 1]  # read twice: nothing moved
    assert store.aliases("scorer") == {"production": 4}
    assert history_rows(store) == rows
    assert store.rollback("scorer") == (4, 3)
    assert store.previous_targets("scorer") == [1]  # an undo stack, as rollback's
    assert store.rollback("scorer") == (3, 1)
    assert store.previous_targets("scorer") == []
    store.set_alias("scorer", "staging", 2)
    assert store.previous_targets("scorer", "staging") == []
    with pytest.raises(AliasNotFound):
        store.previous_targets("scorer", "canary")
