"""The served references: a version that fails to load says which version it is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelpilot.errors import ArtifactError
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.serving.conftest import started

NEEDS_WEIGHTS = '''
from pathlib import Path

WEIGHTS = Path({weights!r})
{at_import}


class Model:
    """Loads its weights from a file beside it, as models that keep them apart do."""

    def load(self):
        if not WEIGHTS.exists():
            raise ValueError("weights file missing")

    def predict(self, x):
        return x[:, 0]
'''


def needing_weights(tmp_path: Path, at_import: bool = False) -> tuple[Path, Path]:
    """A Python model that loads while its weights file exists (at import, or in load());
    the model's file and the weights file."""
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")
    check = 'if not WEIGHTS.exists():\n    raise RuntimeError("no weights at import")'
    model = tmp_path / "weighted.py"
    model.write_text(NEEDS_WEIGHTS.format(weights=str(weights), at_import=check * at_import))
    return model, weights


@pytest.mark.parametrize(
    ("at_import", "said"),
    [
        (False, "Model.load() failed: ValueError: weights file missing"),
        (True, "importing the file failed: RuntimeError('no weights at import')"),
    ],
)
async def test_a_model_that_fails_to_load_at_start_is_named(
    registry: Registry, tmp_path: Path, at_import: bool, said: str
) -> None:
    """The server that would not start said "2e9c10d7...(the artifact's 64 hex digits):
    Model.load() failed: ...": the runtime names the file it loads, and a stored artifact's
    file is named by its hash. The error names the version now, and the artifact briefly."""
    model, weights = needing_weights(tmp_path, at_import)
    register_model(registry, "weighted", model, flavor="python")
    version = register_model(registry, "weighted", model, flavor="python")
    weights.unlink()
    sha = version.artifact_sha256
    with pytest.raises(ArtifactError) as info:
        await started(registry, "weighted:2")
    assert str(info.value) == f"weighted:2 (artifact {sha[:12]}): {said}"


async def test_a_corrupted_artifact_at_start_names_its_version(
    registry: Registry, iris_model_path: Path
) -> None:
    """Told that an artifact is corrupted and to register the model file again, the reader
    had to find out which model's file that was."""
    version = register_model(registry, "iris", iris_model_path)
    path = registry.artifacts.path_for(version.artifact_sha256)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactError) as info:
        await started(registry, "iris")
    message = str(info.value)
    assert message.startswith(f"iris:1: artifact {version.artifact_sha256[:12]} is corrupted: ")
    assert message.endswith("Register the model file again.")


async def test_a_stalled_rollout_names_the_version_that_failed(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The version before keeps serving, and the log says which one failed, and why, once."""
    model, weights = needing_weights(tmp_path)
    register_model(registry, "weighted", model, flavor="python", aliases=["production"])
    second = register_model(registry, "weighted", model, flavor="python")
    engine = await started(registry, "weighted", alias_refresh_seconds=0.05)
    try:
        weights.unlink()  # version 1 is loaded; version 2 will not be
        registry.set_alias("weighted", "production", 2)
        for _ in range(10):  # several lookups: each finds version 2, which does not load
            await asyncio.sleep(0.05)
            response = await engine.infer("weighted", request_from_rows([[1.0, 2.0]]))
            assert response.model_version == "1"
    finally:
        await engine.stop()
    failed = [r.getMessage() for r in caplog.records if "did not load" in r.getMessage()]
    assert failed == [
        "keeping weighted:1: new version weighted:2 did not load (trying again every 0.05 s): "
        f"weighted:2 (artifact {second.artifact_sha256[:12]}): Model.load() failed: "
        "ValueError: weights file missing"
    ]


async def test_a_version_asked_for_by_number_that_fails_to_load_is_named(
    registry: Registry, tmp_path: Path
) -> None:
    """A request for an explicit version loads it on demand, past the served references:
    its error still read as the artifact's 64-character hash."""
    model, weights = needing_weights(tmp_path)
    register_model(registry, "weighted", model, flavor="python", aliases=["production"])
    second = register_model(registry, "weighted", model, flavor="python")
    engine = await started(registry, "weighted")
    try:
        weights.unlink()
        with pytest.raises(ArtifactError) as info:
            await engine.infer("weighted", request_from_rows([[1.0, 2.0]]), "2")
    finally:
        await engine.stop()
    assert str(info.value) == (
        f"weighted:2 (artifact {second.artifact_sha256[:12]}): Model.load() failed: "
        "ValueError: weights file missing"
    )
