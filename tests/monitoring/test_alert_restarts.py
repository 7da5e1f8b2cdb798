"""A server restarted while an alert fires takes its alert book over (``alert_book_store``):
the alert is the same alert, shown at once, and not announced again."""

from __future__ import annotations

import pandas as pd

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, send, shifted_traffic
from tests.monitoring.webhook_receiver import Receiver


async def test_a_drift_alert_firing_at_a_restart_is_the_same_alert_after_it(
    labelled_iris: Registry, iris_frame: pd.DataFrame, receiver: Receiver
) -> None:
    """The tester's restart (F2): the alert came back under a new id and ``since``, and the
    old id was never resolved; with MODELPILOT_ALERT_FOR_SECONDS it was missing from
    /api/alerts and modelpilot_alert_active for the whole wait after the restart."""
    settings = {"drift_window_rows": 100, "alert_webhook_url": receiver.url}
    async with monitored(labelled_iris, **settings) as first:
        await send(first.client, shifted_traffic(iris_frame, 100, seed=3))
        first.monitor.flush()
        (fired,) = (await first.client.get("/api/alerts")).json()["active"]
    assert fired["rule"] == "data_drift"

    async with monitored(labelled_iris, alert_for_seconds=600.0, **settings) as second:
        (kept,) = (await second.client.get("/api/alerts")).json()["active"]
        assert (kept["id"], kept["since"]) == (fired["id"], fired["since"])
        await send(second.client, shifted_traffic(iris_frame, 100, seed=4))
        second.monitor.flush()  # it still holds: the same alert, not pending again
        alerts = (await second.client.get("/api/alerts")).json()
        assert [a["id"] for a in alerts["active"]] == [fired["id"]] and alerts["pending"] == []
        metrics = (await second.client.get("/metrics")).text
        assert 'modelpilot_alert_active{model="iris",rule="data_drift"' in metrics
    (told,) = receiver.received  # announced once, by the first server
    assert [a["id"] for a in told["alerts"]] == [fired["id"]]
    assert told["server"].endswith(":8000")  # the machine and the HTTP port


async def test_a_named_server_takes_its_book_over_under_another_machine_and_port(
    labelled_iris: Registry, iris_frame: pd.DataFrame, receiver: Receiver
) -> None:
    """A Kubernetes Deployment's new pod has a new name: keyed by machine and port alone, its
    predecessor's alerts stayed with the receiver for good. ``MODELPILOT_SERVER_NAME`` keys
    the book (and names the server in notifications) instead."""
    settings = {"drift_window_rows": 100, "alert_webhook_url": receiver.url}
    async with monitored(labelled_iris, server_name=" fraud-api\n", **settings) as first:
        await send(first.client, shifted_traffic(iris_frame, 100, seed=3))
        first.monitor.flush()
        (fired,) = (await first.client.get("/api/alerts")).json()["active"]

    async with monitored(labelled_iris, http_port=8001, **settings) as unnamed:
        assert (await unnamed.client.get("/api/alerts")).json()["active"] == []  # not its book

    async with monitored(
        labelled_iris, server_name="fraud-api", http_port=8002, alert_for_seconds=600.0, **settings
    ) as second:
        (kept,) = (await second.client.get("/api/alerts")).json()["active"]
        assert (kept["id"], kept["since"]) == (fired["id"], fired["since"])
    # Announced once under the name, by the first server. (The unnamed one, its window put
    # back from the log as drifted as the first one's, announced an alert of its own.)
    (told,) = [n for n in receiver.received if n["server"] == "fraud-api"]
    assert [a["id"] for a in told["alerts"]] == [fired["id"]] and told["alerts"][0][
        "state"
    ] == "firing"
