"""With ``--workers N`` and an inference log that leaves requests out (sampled, or off), a
label for such a request joins only at the worker that answered it: the server says so when
it starts, and a label refused for it says why and what to do, rather than blame the id."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from modelpilot.monitoring.siblings import prometheus_dir
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, send


async def test_a_label_for_a_request_another_worker_kept_in_memory_is_refused_saying_why(
    labelled_iris: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a load balancer about (N-1)/N of such labels were refused, each with a 404 that
    told the client to use the id its prediction was answered with, which it had."""
    prometheus_dir(tmp_path).mkdir()  # as ``serve --workers`` makes the workers' directory
    workers = {"workers": 2, "worker_dir": tmp_path, "monitor_process": False}
    sampled = {"inference_log_sample_rate": 0.0, **workers}
    with caplog.at_level(logging.WARNING, "modelpilot.monitoring.process"):
        async with (
            monitored(labelled_iris, worker_index=0, **sampled) as first,
            monitored(labelled_iris, worker_index=1, **sampled) as second,
        ):
            (answered,) = await send(second.client, np.array([[5.1, 3.5, 1.4, 0.2]]), 1)
            second.monitor.flush()
            label = {"request_id": answered, "label": 0}
            assert (await second.client.post("/api/feedback/iris", json=label)).status_code == 200
            refused = await first.client.post("/api/feedback/iris", json=label)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("labels: ")]
    assert len(warned) == 1  # worker 0's
    assert refused.status_code == 404
    error = refused.json()["error"]
    for said in (warned[0], error):
        assert (
            "the inference log keeps 0% of requests (MODELPILOT_INFERENCE_LOG_SAMPLE_RATE)" in said
        )
        assert "only at the worker that answered it, one of 2" in said
        assert "Log every request" in said and "MODELPILOT_MONITOR_SAMPLE_RATE" in said


async def test_a_server_whose_workers_log_every_request_says_nothing_of_it(
    labelled_iris: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prometheus_dir(tmp_path).mkdir()
    with caplog.at_level(logging.WARNING, "modelpilot.monitoring.process"):
        async with monitored(
            labelled_iris, workers=2, worker_dir=tmp_path, monitor_process=False
        ) as served:
            refused = await served.client.post(
                "/api/feedback/iris", json={"request_id": "made-up", "label": 0}
            )
    assert not [r for r in caplog.records if r.getMessage().startswith("labels: ")]
    assert refused.status_code == 404 and "worker" not in refused.json()["error"]
