"""A request for a version that does not load fails as that version's: the metrics, and the
error-rate alert's list of failing versions, name it, as they name a version that fails once
loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpilot.errors import ArtifactError, VersionNotFound
from modelpilot.monitoring.history import ServiceHistory
from modelpilot.monitoring.service import ServiceMetrics
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from tests.serving.conftest import register_scorer, started


async def test_a_version_named_in_the_request_that_does_not_load_is_counted_as_its_own(
    registry: Registry, tmp_path: Path
) -> None:
    """Its 500s were counted under version "unknown" (and the alert said "failed: scorer 3"),
    though the request named version 1 and the error itself said "scorer:1: artifact ... is
    missing": an operator pinning a canary by version could not tell which version broke."""
    first = register_scorer(registry, tmp_path, 1)
    register_scorer(registry, tmp_path, 2)
    registry.set_alias("scorer", "production", 2)
    registry.artifacts.path_for(first.artifact_sha256).unlink()  # a clean-up job, say
    engine = await started(registry)
    metrics, history = ServiceMetrics(), ServiceHistory()
    engine.add_observer(metrics)
    engine.add_observer(history)
    try:
        for _ in range(3):
            with pytest.raises(ArtifactError, match=r"^scorer:1: artifact "):
                await engine.infer("scorer", request_from_rows([[3.0]]), "1", "rest")
        response = await engine.infer("scorer", request_from_rows([[3.0]]), None, "rest")
        assert response.model_version == "2"
        # A version that does not exist is still nobody's (no series for made-up numbers).
        with pytest.raises(VersionNotFound):
            await engine.infer("scorer", request_from_rows([[3.0]]), "7", "rest")
    finally:
        await engine.stop()
    metrics.flush()
    value = metrics.registry.get_sample_value
    failed = {"model": "scorer", "version": "1", "transport": "rest", "status": "500"}
    assert value("modelpilot_requests_total", failed) == 3
    errors = {"model": "scorer", "version": "1", "kind": "ArtifactError"}
    assert value("modelpilot_errors_total", errors) == 3
    unknown = {"model": "scorer", "version": "unknown", "transport": "rest", "status": "500"}
    assert value("modelpilot_requests_total", unknown) is None
    missing = {"model": "scorer", "version": "unknown", "transport": "rest", "status": "404"}
    assert value("modelpilot_requests_total", missing) == 1
    assert history.close_interval(now=2.0).failing == (("scorer:1", 3),)
