"""A server started while a model served at its latest version (no ``production`` alias) has a
latest version that fails to load starts on the newest version before it that loads, as the
same stalled rollout that a running server is in then (test_start_on_previous_version.py has
the alias's case); with none that loads, it does not start, and says how to get back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelpilot.errors import ArtifactError
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.serving.conftest import corrupt, register_scorer, started
from tests.serving.test_start_on_previous_version import answered_by


async def test_a_restart_serves_the_version_before_the_latest_and_says_the_rollout_stalled(
    registry: Registry, iris_version: ModelVersion, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A running server kept scorer:1 when scorer:2 did not load (``rollout_stalled``); the
    same server restarted (a pod, or ``--workers``' replacement of a worker that died) did not
    start at all, and took iris, with nothing wrong, down with it."""
    register_scorer(registry, tmp_path, 1)
    broken = register_scorer(registry, tmp_path, 2)
    held = corrupt(registry, broken)
    with caplog.at_level(logging.ERROR, logger="modelpilot.serving.served"):
        engine = await started(registry, alias_refresh_seconds=0.1)  # every model, at latest
    try:
        assert engine.served.all_loaded()
        assert (await engine.infer("scorer", request_from_rows([[3.0]]))).model_version == "1"
        assert (await engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]]))).outputs
        version, reason = engine.served.stalled["scorer"]
        assert version.key == broken.key
        assert reason.startswith(f"scorer:2: artifact {broken.artifact_sha256[:12]} is corrupted")
        (record,) = [r for r in caplog.records if r.getMessage().startswith("serving scorer:1")]
        assert record.getMessage().startswith(
            "serving scorer:1, the newest version that loads before scorer's latest (no alias "
            "production): scorer:2 did not load (trying again every 0.1 s): scorer:2: artifact"
        )

        # Tried again, as a running server does: once version 2 loads, traffic moves to it.
        registry.artifacts.path_for(broken.artifact_sha256).write_text(held)
        await answered_by(engine, "2")
        assert engine.served.stalled == {}
    finally:
        await engine.stop()


async def test_two_broken_versions_in_a_row_start_on_the_one_before_both(
    registry: Registry, tmp_path: Path
) -> None:
    """As a running server stays on version 1 while 2 and then 3 fail to load."""
    for version in (1, 2, 3):
        register_scorer(registry, tmp_path, version)
    for version in (2, 3):
        corrupt(registry, registry.get_version("scorer", version))
    engine = await started(registry, "scorer")  # given by name alone: the same reference
    try:
        assert (await engine.infer("scorer", request_from_rows([[3.0]]))).model_version == "1"
        assert engine.served.stalled["scorer"][0].version == 3
    finally:
        await engine.stop()


async def test_with_no_version_that_loads_the_error_says_how_to_get_back(
    registry: Registry, iris_version: ModelVersion, tmp_path: Path
) -> None:
    first, second = (register_scorer(registry, tmp_path, v) for v in (1, 2))
    for version in (first, second):
        corrupt(registry, version)
    with pytest.raises(ArtifactError) as info:
        await started(registry)
    message = str(info.value)
    assert message.startswith(f"scorer:2: artifact {second.artifact_sha256[:12]} is corrupted")
    assert (
        "Register the model file again. scorer:2, its latest version (served as no alias "
        "production names one), does not load, nor does version 1, registered before it "
        f"(scorer:1: artifact {first.artifact_sha256[:12]} is corrupted"
    ) in message
    assert message.endswith(
        "Register the model file again). Register a version that loads with `modelpilot "
        "register scorer FILE`, or serve the other models without it: --model iris."
    )


async def test_a_models_only_version_that_does_not_load_is_the_loads_error_alone(
    registry: Registry, tmp_path: Path
) -> None:
    """Nothing before it, no other model to serve: the load's error says it all."""
    only = register_scorer(registry, tmp_path, 1)
    corrupt(registry, only)
    with pytest.raises(ArtifactError) as info:
        await started(registry)
    message = str(info.value)
    assert message.startswith(f"scorer:1: artifact {only.artifact_sha256[:12]} is corrupted")
    assert message.endswith("Register the model file again.")
    assert "latest" not in message
