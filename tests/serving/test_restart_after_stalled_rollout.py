"""A server started while an alias points at a version that fails to load, with no version
before it in the alias's history to start on instead (test_start_on_previous_version.py has
those that have one): it does not start (as Triton's default), and its error says which alias
points there and how to get back."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpilot.errors import ArtifactError
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.serving.conftest import corrupt, register_scorer, started


def rolled_out_broken(registry: Registry, tmp_path: Path, alias: str) -> ModelVersion:
    """``scorer`` versions 1 and 2, ``alias`` created at version 2, whose artifact is
    corrupted: its history names no version before; version 2."""
    register_scorer(registry, tmp_path, 1)
    broken = register_scorer(registry, tmp_path, 2)
    corrupt(registry, broken)
    registry.set_alias("scorer", alias, 2)
    return broken


async def test_the_error_names_the_alias_and_the_commands_that_get_back(
    registry: Registry, iris_version: ModelVersion, tmp_path: Path
) -> None:
    """The server said only "scorer:2: artifact ... is corrupted", and exited: not that
    production pointed there, nor that `modelpilot rollback` moves it back, nor that iris,
    with nothing wrong, could be served."""
    broken = rolled_out_broken(registry, tmp_path, "production")
    with pytest.raises(ArtifactError) as info:
        await started(registry)  # every model, as `modelpilot serve` without --model
    message = str(info.value)
    assert message.startswith(f"scorer:2: artifact {broken.artifact_sha256[:12]} is corrupted")
    assert message.endswith(
        "Register the model file again. scorer@production points at version 2, which does not "
        "load, and its history names no version it pointed at before, to start on instead. "
        "Point the alias at a version that loads with `modelpilot alias scorer production "
        "VERSION`, or serve the other models without it: --model iris."
    )

    # Each way back works: the other models alone, and the alias moved.
    engine = await started(registry, "iris")
    await engine.stop()
    assert registry.set_alias("scorer", "production", 1) == 2
    engine = await started(registry)
    try:
        response = await engine.infer("scorer", request_from_rows([[3.0]]))
        assert response.model_version == "1"
    finally:
        await engine.stop()


async def test_an_alias_other_than_production_is_named_in_the_rollback(
    registry: Registry, tmp_path: Path
) -> None:
    rolled_out_broken(registry, tmp_path, "staging")
    with pytest.raises(ArtifactError) as info:
        await started(registry, "scorer@staging")
    assert str(info.value).endswith(
        "scorer@staging points at version 2, which does not load, and its history names no "
        "version it pointed at before, to start on instead. Point the alias at a version that "
        "loads with `modelpilot alias scorer staging VERSION`."
    )


async def test_a_version_asked_for_by_number_gets_no_advice_about_aliases(
    registry: Registry, tmp_path: Path
) -> None:
    """Asked for by number, no alias moved: the error is the load's alone. (Served at its
    latest version, without the alias, scorer starts on version 1: test_start_before_latest.py.)
    """
    broken = rolled_out_broken(registry, tmp_path, "staging")
    with pytest.raises(ArtifactError) as info:
        await started(registry, "scorer:2")
    assert str(info.value).startswith(f"scorer:2: artifact {broken.artifact_sha256[:12]}")
    assert str(info.value).endswith("Register the model file again.")
