"""A version the alias moved to that cannot load: served around, and said so."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored

SOURCE = """
from pathlib import Path

class Model:
    def load(self):
        if Path({marker!r}).exists():
            raise RuntimeError("the weights are gone")

    def predict(self, x):
        return x.sum(axis=1)
"""

V2_BODY = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}


async def served_around(served: Served, body: dict[str, Any]) -> None:
    """Ask for ``summer`` until its rollout to version 2 stalls, every answer version 1's."""
    for _ in range(40):
        answer = await served.client.post("/predict/summer", json=body)
        assert answer.status_code == 200 and answer.json()["version"] == "1"
        if "summer" in served.engine.served.stalled:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the rollout to version 2 never stalled")


async def test_a_version_that_fails_to_load_raises_an_alert_until_the_alias_moves_back(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "first.py").write_text(SOURCE.format(marker=str(tmp_path / "never")))
    marker = tmp_path / "broken"
    (tmp_path / "second.py").write_text(SOURCE.format(marker=str(marker)))
    register_model(registry, "summer", tmp_path / "first.py", aliases=["production"])
    register_model(registry, "summer", tmp_path / "second.py")
    marker.touch()  # version 2 loads no more: it fails in this server
    body = {"data": [[1.0, 2.0]]}
    async with monitored(registry, alias_refresh_seconds=0) as served:
        client, engine = served.client, served.engine
        registry.set_alias("summer", "production", 2)
        await served_around(served, body)
        served.monitor.flush()
        (alert,) = (await client.get("/api/alerts")).json()["active"]
        assert (alert["rule"], alert["model"]) == ("rollout_stalled", "summer:2")
        assert "the weights are gone" in alert["message"]
        metrics = (await client.get("/metrics")).text
        assert 'modelpilot_rollout_stalled{model="summer",version="2"} 1.0' in metrics

        registry.set_alias("summer", "production", 1)  # rolled back
        for _ in range(20):
            await client.post("/predict/summer", json=body)
            if not engine.served.stalled:
                break
            await asyncio.sleep(0.05)
        served.monitor.flush()
        alerts = (await client.get("/api/alerts")).json()
        assert alerts["active"] == []
        assert "modelpilot_rollout_stalled{" not in (await client.get("/metrics")).text
        # Resolved because the alias left version 2, which never loaded: it said "loaded".
        resolved = [a for a in alerts["history"] if a["state"] == "resolved"]
        assert [a["message"] for a in resolved] == [
            "not loaded, but no longer wanted: summer serves version 1"
        ]


HANGING = """
import time
from pathlib import Path

class Model:
    def load(self):
        for _ in range(2000):  # at most 20 s, so that a failed test does not hang the run
            if not Path({hold!r}).exists():
                return
            time.sleep(0.01)

    def predict(self, x):
        return x.sum(axis=1) * 2
"""


async def test_a_version_that_hangs_loading_stalls_the_rollout_until_it_loads(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "first.py").write_text(SOURCE.format(marker=str(tmp_path / "never")))
    hold = tmp_path / "hold"
    (tmp_path / "second.py").write_text(HANGING.format(hold=str(hold)))
    register_model(registry, "summer", tmp_path / "first.py", aliases=["production"])
    register_model(registry, "summer", tmp_path / "second.py")
    hold.touch()  # from now on, version 2's load() hangs until this file goes
    body = {"data": [[1.0, 2.0]]}
    settings = {"alias_refresh_seconds": 0, "rollout_stall_seconds": 0.2}
    async with monitored(registry, request_timeout_seconds=0.2, **settings) as served:
        client, engine = served.client, served.engine
        try:
            registry.set_alias("summer", "production", 2)
            await served_around(served, body)
            served.monitor.flush()
            (alert,) = (await client.get("/api/alerts")).json()["active"]
            assert (alert["rule"], alert["model"]) == ("rollout_stalled", "summer:2")
            assert "still loading after 0.2 s" in alert["message"]
            # Asked for by number, it answers 503 past the request timeout, not never.
            asked = await client.post("/v2/models/summer/versions/2/infer", json=V2_BODY)
            assert asked.status_code == 503 and "still loading" in asked.json()["error"]
        finally:
            hold.unlink()
        for _ in range(100):
            answer = await client.post("/predict/summer", json=body)
            if answer.json()["version"] == "2":
                break
            await asyncio.sleep(0.05)
        assert answer.json()["version"] == "2" and not engine.served.stalled
        served.monitor.flush()
        assert (await client.get("/api/alerts")).json()["active"] == []
