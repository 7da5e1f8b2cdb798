"""The monitoring readers under ``/api`` read the monitor off the event loop.

``GET /api/monitoring/{model}`` took the monitor's lock on the event loop: while the monitor's
thread held it (a 2,000-feature evaluation, 0.2-0.7 s; a 50,000-label join, 1 s) the whole
server stopped, health probes included. And every dashboard poll built and serialised a wide
model's 900 KB report on the loop again (35-150 ms each; ``test_overview_json`` has the
entries made once).
"""

from __future__ import annotations

import asyncio
import threading

import pandas as pd

from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, reference_traffic, send

HOLD_SECONDS = 10.0
"""How long the test's thread holds the monitor's lock at most: a reader that waited for it
on the event loop held the health request up as long (the test lets go once it is answered)."""

READERS = ("/api/monitoring/iris", "/api/monitoring", "/api/dashboard", "/api/alerts")


async def test_the_server_answers_while_the_monitors_lock_is_held(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    async with monitored(labelled_iris) as served:
        client, monitor = served.client, served.monitor
        ids = await send(client, reference_traffic(iris_frame, 40, seed=3))
        await asyncio.to_thread(monitor.flush)
        label = {"request_id": ids[0], "label": [0] * 10}
        assert (await client.post("/api/feedback/iris", json=label)).status_code == 200
        # Reported on now: else each reader would first report on it, under the lock, in a
        # thread of its own (as they did already), and wait there rather than on the loop.
        await asyncio.to_thread(monitor.reports)

        holding, let_go = threading.Event(), threading.Event()

        def hold() -> None:
            # The monitor's own lock, as its thread holds it through an evaluation.
            with monitor._lock:
                holding.set()
                let_go.wait(HOLD_SECONDS)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        try:
            assert await asyncio.to_thread(holding.wait, 10)
            reads = [asyncio.create_task(client.get(path)) for path in READERS]
            await asyncio.sleep(0.5)  # the readers are under way (a blocked loop stops here)
            health = await client.get("/v2/health/live")
            assert health.status_code == 200
            # Answered while the lock was still held: not after the holder gave up.
            assert holder.is_alive() and not let_go.is_set()
        finally:
            let_go.set()
        answers = await asyncio.gather(*reads)
        holder.join(10)

    for path, answer in zip(READERS, answers, strict=True):
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"] == "application/json"
    one, every, dashboard, _ = (answer.json() for answer in answers)
    assert one["name"] == "iris" and one["serving"] is True
    assert one["performance"]["labels"] == 10  # the label posted, reported on
    assert [entry["name"] for entry in every] == ["iris"]
    (entry,) = dashboard["models"]
    assert entry["serving"] is True and entry["drift"]["dataset_share"] > 0
