"""The repository index names a model that is not served at the version loading it serves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings


async def _index_around_an_unload(
    registry: Registry, models: Sequence[ModelRef] = ()
) -> list[list[tuple[str, str, str, str]]]:
    """The index of ``iris`` served, unloaded, then loaded again."""
    engine = InferenceEngine(registry, make_settings(registry), models=models)
    await engine.start()
    try:
        seen = []
        for step in (None, engine.unload_model, engine.load_model):
            if step is not None:
                await step("iris")
            index = await engine.repository_index()
            seen.append([(e.name, e.version, e.state, e.reason) for e in index])
        return seen
    finally:
        await engine.stop()


async def test_an_unloaded_model_is_listed_at_the_version_that_went_away(
    registry: Registry, iris_version: ModelVersion, iris_model_path: Path
) -> None:
    """A tester's index said version 3 (the latest, never served) went away, where production's
    version 1 was unloaded, and came back with the load."""
    register_model(registry, "iris", iris_model_path)  # version 2, no alias
    served, unloaded, loaded = await _index_around_an_unload(registry)
    assert served == loaded == [("iris", "1", "READY", "")]
    assert unloaded == [("iris", "1", "UNAVAILABLE", "unloaded")]


async def test_a_model_served_at_a_reference_of_its_own_is_listed_at_that_one(
    registry: Registry, iris_version: ModelVersion, iris_model_path: Path
) -> None:
    register_model(registry, "iris", iris_model_path, aliases=["staging"])  # version 2
    register_model(registry, "iris", iris_model_path)  # version 3
    for ref, version in (("iris@staging", "2"), ("iris:3", "3"), ("iris", "1")):
        served, unloaded, loaded = await _index_around_an_unload(registry, [ModelRef.parse(ref)])
        assert served == loaded == [("iris", version, "READY", "")], ref
        assert unloaded == [("iris", version, "UNAVAILABLE", "unloaded")], ref


async def test_a_model_not_served_is_listed_at_its_production_version(
    registry: Registry, iris_version: ModelVersion, iris_model_path: Path
) -> None:
    register_model(registry, "forest", iris_model_path, aliases=["production"])  # version 1
    register_model(registry, "forest", iris_model_path)  # version 2
    engine = InferenceEngine(registry, make_settings(registry), models=[ModelRef("iris")])
    await engine.start()
    try:
        index = {e.name: e for e in await engine.repository_index()}
        assert (index["forest"].version, index["forest"].state) == ("1", "UNAVAILABLE")
        assert index["forest"].reason == "not served"
    finally:
        await engine.stop()
