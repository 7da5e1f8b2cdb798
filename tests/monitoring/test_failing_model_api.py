"""A model that fails every request, on a server of several, is named by the alerts and has a
report saying so (tester "multimodel" F1): it had no report, /api/monitoring/broken answered
404 "it has answered no requests since the server started", the page said "no traffic yet",
and the server's error rate, 2.4% of every request, raised nothing."""

from __future__ import annotations

from pathlib import Path

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored

ROW = [5.1, 3.5, 1.4, 0.2]


async def test_a_model_that_fails_every_request_is_named_by_the_alerts_and_its_report(
    labelled_iris: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "broken.py"
    path.write_text("class Model:\n    def predict(self, x):\n        raise RuntimeError('boom')\n")
    register_model(labelled_iris, "broken", path, flavor="python")
    async with monitored(labelled_iris) as served:
        client = served.client
        for _ in range(120):
            assert (await client.post("/predict/iris", json={"data": [ROW]})).status_code == 200
        for _ in range(6):
            assert (await client.post("/predict/broken", json={"data": [ROW]})).status_code == 500
        served.monitor.flush()

        # 6 of 126 requests, 4.8%: the server's error rate holds not, broken's own does.
        alerts = (await client.get("/api/alerts")).json()["active"]
        active = [a for a in alerts if a["rule"] == "error_rate"]
        assert [a["model"] for a in active] == ["broken:1"]
        assert "broken:1 failed 6 of 6 requests" in active[0]["message"]

        response = await client.get("/api/monitoring/broken")
        assert response.status_code == 200, response.text
        report = response.json()
        assert (report["name"], report["version"], report["requests"]) == ("broken", "1", 0)
        traffic = report["traffic"]
        assert (traffic["window_requests"], traffic["window_server_errors"]) == (6, 6)
        assert (traffic["requests"], traffic["server_errors"]) == (6, 6)
        iris = (await client.get("/api/monitoring/iris")).json()["traffic"]
        assert (iris["window_requests"], iris["window_server_errors"]) == (120, 0)

        listed = {m["name"]: m for m in (await client.get("/api/monitoring")).json()}
        assert listed["broken"]["traffic"]["server_errors"] == 6
        page = {m["name"]: m for m in (await client.get("/api/dashboard")).json()["models"]}
        assert page["broken"]["traffic"]["window_server_errors"] == 6
        assert page["broken"]["serving"]
