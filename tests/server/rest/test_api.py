"""The monitoring routes under ``/api`` answer a model that is not registered as v2 does."""

from __future__ import annotations

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored


async def test_monitoring_a_model_not_registered_is_a_model_not_found(
    labelled_iris: Registry,
) -> None:
    async with monitored(labelled_iris) as served:
        client = served.client
        missing = (await client.get("/v2/models/nope")).json()["error"]
        assert missing.startswith("no model named 'nope' in the registry; registered models")
        for path in ("/api/monitoring/nope", "/api/monitoring/nope?version=1"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"] == missing, path

        no_version = (await client.get("/v2/models/iris/versions/9")).json()["error"]
        response = await client.get("/api/monitoring/iris?version=9")
        assert response.status_code == 404 and response.json()["error"] == no_version


async def test_monitoring_a_registered_model_without_data_says_it_is_to_come(
    labelled_iris: Registry,
) -> None:
    async with monitored(labelled_iris) as served:
        for path, subject in [
            ("/api/monitoring/iris", "model 'iris'"),
            ("/api/monitoring/iris?version=1", "model 'iris' version 1"),
        ]:
            response = await served.client.get(path)
            assert response.status_code == 404, path
            error = response.json()["error"]
            assert error.startswith(f"no monitoring data for {subject} yet"), error
