"""Sampling: the monitor watches a share of the model calls, the log keeps a share of those,
and labels still join what was kept."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from tests.conftest import make_settings
from tests.monitoring.conftest import metric
from tests.monitoring.test_monitor import IRIS_ROWS


def test_a_sampled_log_keeps_its_share_and_every_label_still_joins(
    labelled_iris: Registry,
) -> None:
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    monitor = Monitor(labelled_iris, log=log, sample_rate=0.3)
    version = labelled_iris.get_version("iris", 1)
    rows, predict = IRIS_ROWS[:3], np.array([0, 2, 2])
    for i in range(100):
        ids = [f"r{2 * i}", f"r{2 * i + 1}"]
        monitor.predicted(version, ids, [1, 2], {"input-0": rows}, {"predict": predict})
    monitor.flush()
    # Drift sees every row; the log holds about 30% of the 200 requests, each with its rows.
    assert monitor.report("iris").rows == 300
    entries = log.recent("iris", limit=1000)
    assert 25 <= len(entries) <= 100
    for entry in entries:
        number = int(entry.request_id[1:])
        expected = rows[:1] if number % 2 == 0 else rows[1:]
        assert entry.inputs == {"input-0": expected.tolist()}
    labels: dict[str, object] = {f"r{i}": 0 if i % 2 == 0 else [2, 2] for i in range(200)}
    result = monitor.feedback("iris", labels)
    assert (result.accepted, result.unknown) == (300, [])
    logged = log.find("iris", [e.request_id for e in entries])
    assert all(e.label == labels[e.request_id] for e in logged.values())
    monitor.stop()


def test_a_sampled_monitor_watches_its_share_of_calls_and_counts_the_rest(
    labelled_iris: Registry,
) -> None:
    with pytest.raises(ValueError, match="call_sample_rate"):
        Monitor(labelled_iris, call_sample_rate=0.0)
    monitor = Monitor(labelled_iris, call_sample_rate=0.25)
    version = labelled_iris.get_version("iris", 1)
    for i in range(2000):
        monitor.predicted(
            version, [f"r{i}"], [1], {"input-0": IRIS_ROWS[:1]}, {"predict": np.array([0])}
        )
    monitor.flush()
    watched = monitor.report("iris").requests
    assert 400 <= watched <= 600  # a quarter of 2,000 calls: 500, give or take 19
    assert watched + monitor.unsampled == 2000 and monitor.dropped == 0
    assert metric(monitor, "modelpilot_monitor_unsampled_total") == monitor.unsampled
    # Labels join the watched requests; the others are unknown, as if never answered.
    result = monitor.feedback("iris", {f"r{i}": 0 for i in range(2000)})
    assert result.accepted == watched and len(result.unknown) == monitor.unsampled
    monitor.stop()


async def test_the_sample_rate_is_a_setting_that_feedback_errors_mention(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPILOT_MONITOR_SAMPLE_RATE", "0.1")
    settings = make_settings(labelled_iris, monitor_process=False)
    engine = InferenceEngine(labelled_iris, settings)
    await engine.start()
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    assert monitoring.monitor is not None and monitoring.monitor.call_sample_rate == 0.1
    app = create_app(engine, settings, monitoring)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        reply = await client.post("/api/feedback/iris", json={"request_id": "no", "label": 0})
    assert reply.status_code == 404
    assert "watches 10% of model calls" in reply.json()["error"]
    await asyncio.to_thread(monitoring.stop)
    await engine.stop()
