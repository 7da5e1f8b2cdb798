"""After a rollback, the model's monitoring page is the version that answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored, reference_traffic, send


async def test_a_models_report_is_of_the_version_its_requests_go_to(
    labelled_iris: Registry, iris_model_path: Path, iris_frame: pd.DataFrame
) -> None:
    register_model(labelled_iris, "iris", iris_model_path, aliases=["production"])
    async with monitored(labelled_iris, alias_refresh_seconds=0) as served:
        client, engine = served.client, served.engine
        await send(client, reference_traffic(iris_frame, 20, seed=1))  # to version 2
        labelled_iris.set_alias("iris", "production", 1)  # rolled back
        for _ in range(200):
            if dict(engine.served.current_versions())["iris"].version == 1:
                break
            await asyncio.sleep(0.01)
        await send(client, reference_traffic(iris_frame, 50, seed=2))  # to version 1
        served.monitor.flush()
        report = (await client.get("/api/monitoring/iris")).json()
        assert (report["version"], report["requests"], report["serving"]) == ("1", 5, True)
        newest = (await client.get("/api/monitoring/iris", params={"version": 2})).json()
        assert (newest["version"], newest["requests"], newest["serving"]) == ("2", 2, False)
