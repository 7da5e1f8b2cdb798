"""The overview as the API answers it: JSON, each report's entry made once.

Every dashboard poll built and serialised a 2,000-feature model's report (900 KB of JSON)
again, 35-150 ms each, for every open page every 2 s.
"""

from __future__ import annotations

import asyncio

import orjson
import pandas as pd

from modelpilot.monitoring.overview import Overview, SerialisedEntries
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, reference_traffic, send


async def test_the_answers_are_the_overviews_own(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    """The JSON answered is what ``Overview`` builds (``read``, ``entries``), field for field."""
    async with monitored(labelled_iris) as served:
        client, monitor = served.client, served.monitor
        ids = await send(client, reference_traffic(iris_frame, 60, seed=4))
        await asyncio.to_thread(monitor.flush)
        labels = {"labels": [{"request_id": i, "label": [1] * 10} for i in ids]}
        assert (await client.post("/api/feedback/iris", json=labels)).status_code == 200
        overview = Overview(monitor, served.engine)

        (report,) = monitor.reports()
        entries = overview.entries_json([report], {}, monitor.traffic())
        assert orjson.loads(entries) == overview.entries([report])
        assert orjson.loads(overview.entry_json(report, False, {})) == {
            **overview.entries([report])[0],
            "serving": False,
        }
        read, built = orjson.loads(overview.read_json({})), overview.read()
        for changing in ("time", "uptime_seconds", "system"):
            del read[changing], built[changing]
        assert read == built
        assert read["models"][0]["performance"]["labels"] == 60


async def test_a_reports_entry_is_made_once_and_again_for_the_next_report(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    async with monitored(labelled_iris) as served:
        client, monitor = served.client, served.monitor
        ids = await send(client, reference_traffic(iris_frame, 20, seed=5))
        labels = {"labels": [{"request_id": i, "label": [1] * 10} for i in ids]}
        assert (await client.post("/api/feedback/iris", json=labels)).status_code == 200
        await asyncio.to_thread(monitor.flush)
        entries = SerialisedEntries()
        (report,) = monitor.reports()
        first = orjson.loads(entries.entry(report, 1.0, serving=True))
        assert first["serving"] is True and first["requests"] == 2
        # The monitor never changes a report it made: what is made of it is kept, so a
        # change made here is not seen (the proof that it is not made again).
        report.performance_history.append({"t": 1.0, "accuracy": 0.5})
        again = orjson.loads(entries.entry(report, 1.0, serving=False))
        assert again == {**first, "serving": False}

        await send(client, reference_traffic(iris_frame, 20, seed=6))
        await asyncio.to_thread(monitor.flush)  # a new evaluation: a new report
        (newer,) = monitor.reports()
        assert newer is not report
        assert orjson.loads(entries.entry(newer, 1.0))["requests"] == 4
