"""A label posted again for a request the inference log holds a label of (a retry, a nightly
re-sync, a correction) is not counted again, and one posted unchanged changes nothing, even
once the quality window has let the first go."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import Served, monitored, send

WINDOW = 10
"""The quality window's rows in these tests: the first labels leave it soon."""

QUICK = {"performance_window_rows": WINDOW, "performance_min_labels": 5}


def _report(served: Served) -> ModelReport:
    served.monitor.report_labelled()
    return served.monitor.report("iris", 1)


def _window(served: Served) -> list[tuple[Any, Any]]:
    """The quality window's (request id, label) pairs, oldest first."""
    monitor = served.monitor.model_monitor("iris", 1)
    assert monitor is not None
    return [(row.key[0], row.truth) for row in monitor.performance.rows()]


async def _post(served: Served, labels: dict[str, Any]) -> dict[str, Any]:
    body = {"labels": [{"request_id": i, "label": v} for i, v in labels.items()]}
    reply = await served.client.post("/api/feedback/iris", json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


@pytest.mark.parametrize("monitor_process", [False, True], ids=["in-process", "own-process"])
async def test_a_label_posted_again_after_it_left_the_window_changes_nothing(
    labelled_iris: Registry,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
    monitor_process: bool,
) -> None:
    """Re-posted unchanged, 200 labels of predictions 100,000 requests old came back into
    the window as its newest (MAE 4.558 became 4.575), and labels_total counted them again."""
    async with monitored(labelled_iris, monitor_process=monitor_process, **QUICK) as served:
        rows = iris_frame.to_numpy()[::5]  # 30 rows of all three classes
        ids = await send(served.client, rows, per_request=1)
        await asyncio.to_thread(served.monitor.flush)
        truth = {i: int(y) for i, y in zip(ids, iris_target[::5], strict=True)}
        assert await _post(served, truth) == {"accepted": 30, "unknown": []}
        before, window = _report(served), _window(served)
        assert before.labels_total == 30 and [i for i, _ in window] == ids[-WINDOW:]

        old = dict(list(truth.items())[:5])  # long out of the window
        assert await _post(served, old) == {"accepted": 5, "unknown": []}  # a retry: taken
        after = _report(served)
        assert _window(served) == window
        assert after.labels_total == 30
        assert after.performance == before.performance

        # A correction is a label to judge on (the newest), but no new label to count.
        first = ids[0]
        corrected = (truth[first] + 1) % 3
        assert await _post(served, {first: corrected}) == {"accepted": 1, "unknown": []}
        assert _window(served) == [*window[1:], (first, corrected)]
        assert _report(served).labels_total == 30


async def test_a_label_posted_again_to_another_server_is_not_counted_again(
    replicas: tuple[Registry, Registry], iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    """Behind a load balancer a retry goes to any server: each counted it, so the servers'
    labels_total summed to twice the labels posted."""
    first, second = replicas
    async with (
        monitored(first, monitor_process=False, **QUICK) as a,
        monitored(second, monitor_process=False, **QUICK) as b,
    ):
        ids = await send(a.client, iris_frame.to_numpy()[:8], per_request=1)
        await asyncio.to_thread(a.monitor.flush)
        truth = {i: int(y) for i, y in zip(ids, iris_target[:8], strict=True)}
        assert await _post(a, truth) == {"accepted": 8, "unknown": []}
        assert await _post(b, truth) == {"accepted": 8, "unknown": []}
        assert _report(a).labels_total == 8
        on_b = b.monitor.model_monitor("iris", 1)
        assert on_b is not None and on_b.performance.total == 0
