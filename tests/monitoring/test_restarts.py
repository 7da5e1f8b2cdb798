"""A server that restarts: the inference log joins labels to its predictions, and its
windows and labels come back from it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from modelpilot.monitoring.inference_log import InferenceLog, batches
from modelpilot.monitoring.log_segments import Place, Segments
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.process import monitor_config
from modelpilot.registry.store import Registry
from tests.conftest import make_settings
from tests.monitoring.conftest import Served, metric, monitored, reference_traffic, send


async def test_labels_join_through_the_log_after_a_restart(
    served: Served, labelled_iris: Registry
) -> None:
    ids = await send(served.client, np.array([[5.1, 3.5, 1.4, 0.2]] * 3), per_request=1)
    served.monitoring.stop()  # a clean shutdown writes everything queued

    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    fresh = Monitor(labelled_iris, monitor_config(make_settings(labelled_iris)), log=log)
    try:
        assert log.count("iris") == 3
        entry = log.find("iris", ids[:1])[ids[0]]
        assert entry.inputs == {"input-0": [[5.1, 3.5, 1.4, 0.2]]}
        assert entry.version == 1
        result = fresh.feedback("iris", {ids[0]: 0, ids[1]: 1, "missing": 2})
        assert (result.accepted, result.unknown) == (2, ["missing"])
        assert log.find("iris", ids[:1])[ids[0]].label == 0
        performance = fresh.report("iris").performance
        assert performance is not None and performance.labels == 2
        assert performance.current["accuracy"] == 0.5
    finally:
        fresh.stop()


async def restored(served: Served, labels: int) -> ModelReport:
    """``served``'s iris report once its thread (started here, as the server starts it) has
    put ``labels`` labels back."""
    served.monitoring.start()
    deadline = time.monotonic() + 20
    while True:
        await asyncio.to_thread(served.monitor.flush)
        report = served.monitor.report("iris")
        performance = report.performance
        if (performance is not None and performance.labels >= labels) or (
            time.monotonic() > deadline
        ):
            return report
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("process", [True, False], ids=["monitoring process", "thread"])
async def test_a_restarted_server_watches_on_where_it_stopped(
    labelled_iris: Registry, iris_frame: pd.DataFrame, iris_target: np.ndarray, process: bool
) -> None:
    settings = {"drift_window_rows": 400, "performance_min_labels": 20, "monitor_process": process}
    rows = reference_traffic(iris_frame, 120, seed=3)
    async with monitored(labelled_iris, **settings) as first:
        ids = await send(first.client, rows, per_request=1)
        await asyncio.to_thread(first.monitor.flush)
        # Labels for 60 requests, a third of them wrong: accuracy 2/3.
        found = first.monitor.tap.lookup("iris", ids[:60])
        labels = {
            i: (int(np.asarray(found[i].outputs["predict"])[0]) + (j % 3 == 0)) % 3
            for j, i in enumerate(ids[:60])
        }
        answer = await first.client.post(
            "/api/feedback/iris",
            json={"labels": [{"request_id": i, "label": label} for i, label in labels.items()]},
        )
        assert answer.json()["accepted"] == 60, answer.json()
        await asyncio.to_thread(first.monitor.flush)
        before = first.monitor.report("iris")
        assert before.performance is not None
    async with monitored(labelled_iris, **settings) as second:
        after = await restored(second, 60)
        assert after.performance is not None and after.performance.labels == 60
        assert after.performance.current == before.performance.current
        assert after.performance.current["accuracy"] == pytest.approx(2 / 3)
        assert after.drift is not None and before.drift is not None
        assert after.drift.rows == before.drift.rows == 120
        assert [f.psi for f in after.drift.features] == [f.psi for f in before.drift.features]
        # The totals count what this server answered and was told: none of it yet.
        assert (after.requests, after.rows, after.labels_total) == (0, 0, 0)
        await send(second.client, rows[:10], per_request=1)
        await asyncio.to_thread(second.monitor.flush)
        assert second.monitor.report("iris").drift.rows == 130


async def test_restoring_can_be_switched_off(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    async with monitored(labelled_iris, drift_window_rows=400) as first:
        await send(first.client, reference_traffic(iris_frame, 40, seed=4), per_request=1)
    async with monitored(labelled_iris, drift_window_rows=400, monitor_restore=False) as second:
        await send(second.client, reference_traffic(iris_frame, 5, seed=5), per_request=1)
        await asyncio.to_thread(second.monitor.flush)
        drift = second.monitor.report("iris").drift
        assert drift is not None and drift.rows == 5


def overwrite(path: Path, at: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(at)
        file.write(data)


@pytest.mark.parametrize("damage", ["segment", "database"])
async def test_a_server_restarted_over_a_damaged_log_watches_on(
    labelled_iris: Registry, iris_frame: pd.DataFrame, damage: str
) -> None:
    """A tester damaged the inference log (100 bytes in the middle of a segment file, or the
    first 64 of its database) and restarted: the monitoring process died at every start, for
    10 s each time, forever; labels got 503, /api/monitoring 404, and no alert could fire.
    Now drift, predictions and labels go on (without the log, labels join only the
    predictions made since the start); /metrics counts what failed."""
    settings = {"drift_window_rows": 400, "performance_min_labels": 20}
    rows = reference_traffic(iris_frame, 60, seed=5)
    logged = []
    async with monitored(labelled_iris, **settings) as first:
        for start in (0, 20, 40):  # three rounds: three batches in the log
            logged.append(await send(first.client, rows[start : start + 20], per_request=1))
            await asyncio.to_thread(first.monitor.flush)
    folder = Path(labelled_iris.location) / "inference-log.segments"
    damaged: list[str] = []
    if damage == "segment":
        with labelled_iris.companion_engine("inference-log").connect() as conn:
            stored = conn.execute(select(batches).order_by(batches.c.id)).mappings().all()
        segments = Segments(folder)
        for row in stored:  # the batch that holds the second round's first request
            place = Place(row["segment"], row["segment_offset"], row["segment_length"])
            held = json.loads(segments.read(place, "request_ids")["request_ids"])
            if logged[1][0] in held:
                damaged = held
                # Its request ids (past the record's lengths): JSON no longer.
                overwrite(folder / place.segment, place.offset + 48, b"#" * 100)
    else:
        overwrite(folder.with_suffix(".db"), 0, b"x" * 64)
    async with monitored(labelled_iris, **settings) as second:
        ids = await send(second.client, rows[:20], per_request=1)
        second.monitoring.start()  # its thread restores the labels, as a server's does
        await asyncio.to_thread(second.monitor.flush)
        reply = await second.client.post(
            "/api/feedback/iris", json={"request_id": ids[0], "label": 0}
        )
        assert reply.status_code == 200 and reply.json()["accepted"] == 1
        answer = await second.client.get("/api/monitoring/iris")
        assert answer.status_code == 200
        assert answer.json()["requests"] == 20
        # The windows: the new requests, and what the log held that could be read.
        restored = 60 - len(damaged) if damage == "segment" else 0
        assert answer.json()["drift"]["window_rows"] == restored + 20
        assert second.monitor.tap.restarts == 0  # it never died
        assert metric(second.monitor, "modelpilot_monitor_failures_total") == 1
        unlogged = metric(second.monitor, "modelpilot_monitor_unlogged_total")
        assert unlogged == (20 if damage == "database" else 0)
        labels = [{"request_id": logged[n][0], "label": 0} for n in (0, 1)]
        earlier = await second.client.post("/api/feedback/iris", json={"labels": labels})
        if damage == "segment":  # the damaged batch's requests are unknown, the others join
            assert earlier.json() == {"accepted": 1, "unknown": [logged[1][0]]}
        else:  # no log: only what this server answered joins
            assert earlier.status_code == 404
