"""A label post reports again on the version it labels, and on nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pandas as pd
import pytest

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from tests.monitoring.conftest import Served, monitored, reference_traffic, send


@pytest.fixture
async def two_models(
    labelled_iris: Registry, forest_version: ModelVersion
) -> AsyncIterator[Served]:
    async with monitored(labelled_iris) as served:
        yield served


async def test_a_label_post_reports_again_on_its_version_alone(
    two_models: Served, iris_frame: pd.DataFrame
) -> None:
    """Every label post asked the monitoring process for its windows and recomputed every
    version's report, 8-20 ms a post, for ids not on record too (which change nothing)."""
    served = two_models
    ids = await send(served.client, reference_traffic(iris_frame, 20, seed=1), per_request=1)
    forest = {"data": [[0.01] * 10]}
    assert (await served.client.post("/predict/forest", json=forest)).status_code == 200
    served.monitor.flush()
    before = {report.model: report for report in served.monitor.reports()}
    assert set(before) == {"iris", "forest"}

    reply = await served.client.post("/api/feedback/iris", json={"request_id": "nope", "label": 1})
    assert reply.status_code == 404
    after = {report.model: report for report in served.monitor.reports()}
    assert after["iris"] is before["iris"] and after["forest"] is before["forest"]

    reply = await served.client.post("/api/feedback/iris", json={"request_id": ids[0], "label": 1})
    assert reply.status_code == 200
    after = {report.model: report for report in served.monitor.reports()}
    assert after["forest"] is before["forest"]
    assert after["iris"].labels_total == 1  # at once, as before
    assert after["iris"].requests == before["iris"].requests == 20
    shown = (await served.client.get("/api/monitoring")).json()
    iris = next(m for m in shown if m["name"] == "iris")
    assert after["iris"].performance is not None
    assert iris["performance"]["labels"] == after["iris"].performance.labels == 1
