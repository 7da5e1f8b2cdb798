"""A model whose requests go to a version without a report yet is not answered for by another
version's report (the one rolled back from, with its drift)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored, reference_traffic, send


async def test_a_models_report_waits_for_the_version_its_requests_go_to(
    labelled_iris: Registry, iris_model_path: Path, iris_frame: pd.DataFrame
) -> None:
    """A tester moved production to a version that took none of the traffic yet: the model's
    report was still the newest one, of the version rolled back from two minutes before."""
    async with monitored(labelled_iris, alias_refresh_seconds=0, monitor_restore=False) as served:
        client, engine = served.client, served.engine
        await send(client, reference_traffic(iris_frame, 20, seed=1))  # to version 1
        served.monitor.flush()
        assert (await client.get("/api/monitoring/iris")).json()["version"] == "1"
        register_model(labelled_iris, "iris", iris_model_path, aliases=["production"])
        for _ in range(200):
            if dict(engine.served.current_versions())["iris"].version == 2:
                break
            await asyncio.sleep(0.01)
        served.monitor.flush()

        answer = await client.get("/api/monitoring/iris")
        assert answer.status_code == 404, answer.json()
        assert answer.json()["error"] == (
            "no monitoring data for model 'iris' version 2, the version its requests go to, "
            "yet: it has answered no requests since the server started, or its first report "
            "is still to come (reports are made every 2 s) (its version 1 has a report)"
        )
        asked = (await client.get("/api/monitoring/iris", params={"version": 1})).json()
        assert (asked["version"], asked["requests"]) == ("1", 2)

        await send(client, reference_traffic(iris_frame, 30, seed=2))  # to version 2
        served.monitor.flush()
        report = (await client.get("/api/monitoring/iris")).json()
        assert (report["version"], report["requests"]) == ("2", 3)
