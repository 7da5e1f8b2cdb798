"""``serve --workers 2``: whichever worker answers, metrics and monitoring cover both."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pandas as pd
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelpilot.registry.store import Registry
from tests.processes import Server, start, stop

T = TypeVar("T")

pytestmark = pytest.mark.slow

REQUESTS = 120


@pytest.fixture
def server(labelled_iris: Registry) -> Iterator[Server]:
    env = {"MODELPILOT_MONITOR_INTERVAL_SECONDS": "0.3", "MODELPILOT_DRIFT_WINDOW_ROWS": "1000"}
    running = start(labelled_iris, "--workers", "2", env=env)
    yield running
    assert stop(running) == 0


def fresh(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request on a new connection, so that the kernel may pick either worker."""
    with httpx.Client(timeout=10) as client:
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]


def sample(metrics: str, name: str, **labels: str) -> list[float]:
    values = []
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            values.append(float(value))
    return values


def settled(url: str, check: object, seconds: float = 20) -> str:
    """/metrics once ``check(text)`` holds on 5 scrapes in a row (any worker may answer)."""
    deadline = time.monotonic() + seconds
    streak, text = 0, ""
    while time.monotonic() < deadline:
        text = fresh("GET", f"{url}/metrics").text
        streak = streak + 1 if check(text) else 0  # type: ignore[operator]
        if streak >= 5:
            return text
        time.sleep(0.1)
    raise AssertionError(f"/metrics never settled; last scrape:\n{text[:3000]}")


def test_metrics_and_monitoring_aggregate_across_workers(
    server: Server, iris_frame: pd.DataFrame
) -> None:
    rows = iris_frame.to_numpy()
    ids = []
    for i in range(REQUESTS):
        reply = fresh("POST", f"{server.url}/predict/iris", json={"data": rows[i % 150].tolist()})
        assert reply.status_code == 200
        ids.append(reply.json()["id"])

    def complete(text: str) -> bool:
        requests = sum(sample(text, "modelpilot_requests_total", model="iris", status="ok"))
        window = sample(text, "modelpilot_drift_window_rows", model="iris")
        return requests == REQUESTS and window == [REQUESTS]

    text = settled(server.url, complete)
    # Per-process metrics come from both workers, told apart by a label.
    workers = set(re.findall(r'modelpilot_process_resident_memory_bytes\{worker="(\d)"\}', text))
    assert workers == {"0", "1"}
    assert sum(sample(text, "modelpilot_request_duration_seconds_count", model="iris")) == REQUESTS
    assert sample(text, "modelpilot_inflight_requests", model="iris") == [0.0, 0.0]  # per worker
    # One family per name, as the exposition format requires: uptime was also a second
    # family of zeros by pid, read off the files every worker's counters share.
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))
    uptime = re.findall(r"^modelpilot_uptime_seconds\{(.*)\} (\S+)$", text, re.MULTILINE)
    assert sorted(labels for labels, _ in uptime) == ['worker="0"', 'worker="1"']
    assert all(float(value) > 0 for _, value in uptime)
    # Monitoring's own counters are each worker's, by worker: one series alternated between
    # the workers' values with whichever answered the scrape.
    own = re.findall(r'^modelpilot_monitor_unsampled_total\{worker="(\d)"\} ', text, re.MULTILINE)
    assert sorted(own) == ["0", "1"]
    # Both workers answered requests: the prediction counter of each version adds up.
    assert sum(sample(text, "modelpilot_prediction_class_total", model="iris")) == REQUESTS
    # So do the statistics Triton's tools read, whichever worker is asked.
    for _ in range(4):
        (stats,) = fresh("GET", f"{server.url}/v2/models/iris/stats").json()["model_stats"]
        assert stats["inference_count"] == REQUESTS
        assert stats["inference_stats"]["success"]["count"] == REQUESTS

    # Labels posted to whichever worker join predictions made by either.
    accepted = 0
    for request_id in ids:
        reply = fresh(
            "POST", f"{server.url}/api/feedback/iris", json={"request_id": request_id, "label": 0}
        )
        assert reply.status_code == 200, reply.text
        accepted += reply.json()["accepted"]
    assert accepted == REQUESTS
    labelled = settled(
        server.url, lambda t: sample(t, "modelpilot_labels_total", model="iris") == [REQUESTS]
    )
    accuracy = sample(labelled, "modelpilot_model_performance", metric="accuracy")
    assert len(accuracy) == 1 and 0 < accuracy[0] < 1


def test_a_label_posted_right_after_its_prediction_joins_whichever_worker_answered(
    server: Server, iris_frame: pd.DataFrame
) -> None:
    # The other worker's round is still on its way to the shared inference log when the
    # label comes: half of these went to the other worker, and found nothing.
    rows = iris_frame.to_numpy()
    for i in range(20):  # new connections: the kernel spreads them over both workers
        reply = fresh("POST", f"{server.url}/predict/iris", json={"data": rows[i].tolist()})
        label = {"request_id": reply.json()["id"], "label": 0}
        joined = fresh("POST", f"{server.url}/api/feedback/iris", json=label)
        assert joined.status_code == 200, joined.text
        assert joined.json() == {"accepted": 1, "unknown": []}
    made_up = {"request_id": "nope", "label": 0}
    assert fresh("POST", f"{server.url}/api/feedback/iris", json=made_up).status_code == 404


def live_workers(server: Server) -> list[psutil.Process]:
    """The server's live worker processes (a dead one not yet reaped is not)."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        with contextlib.suppress(psutil.Error):  # gone, or a zombie
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


def scrapes_while_replaced(server: Server, read: Callable[[str], T]) -> tuple[str, list[T]]:
    """Kill (SIGKILL) the server's first worker and scrape ``/metrics`` until its replacement
    serves beside the other: the last scrape, and what ``read`` made of every scrape since
    the kill."""
    workers = live_workers(server)
    assert len(workers) == 2
    os.kill(workers[0].pid, signal.SIGKILL)
    # Connections still queued on a dying worker's socket are reset: scrape once it is gone.
    workers[0].wait(timeout=30)
    seen: list[T] = []

    def replaced(text: str) -> bool:
        seen.append(read(text))
        alive = {c.pid for c in live_workers(server)}
        restarted = workers[0].pid not in alive and len(alive) == 2
        return restarted and len(sample(text, "modelpilot_uptime_seconds")) == 2

    return settled(server.url, replaced, seconds=40), seen


def test_a_killed_workers_totals_carry_on_in_the_worker_that_replaces_it(
    server: Server, iris_frame: pd.DataFrame
) -> None:
    """Predictions by class and labels are running totals: a worker killed and restarted
    took its share with it, and the counters went back (450 to 228 in a tester's run); later,
    for the seconds until its successor took its share over (6000 to 4220, then no series)."""
    rows = iris_frame.to_numpy()
    ids = []
    for i in range(REQUESTS):
        reply = fresh("POST", f"{server.url}/predict/iris", json={"data": rows[i % 150].tolist()})
        ids.append(reply.json()["id"])
    for request_id in ids:
        label = {"request_id": request_id, "label": 0}
        assert fresh("POST", f"{server.url}/api/feedback/iris", json=label).status_code == 200

    def totals(text: str) -> tuple[float, float]:
        classes = sum(sample(text, "modelpilot_prediction_class_total", model="iris"))
        return classes, sum(sample(text, "modelpilot_labels_total", model="iris"))

    settled(server.url, lambda text: totals(text) == (REQUESTS, REQUESTS))
    text, seen = scrapes_while_replaced(server, totals)
    # Not one scrape in between lost the dead worker's share, nor counted it twice.
    assert set(seen) == {(REQUESTS, REQUESTS)}

    # A worker stopped on its own (SIGTERM) at once after answering loses no count, in the
    # service's counters (it writes them out as it stops) or the model's totals.
    answered = sum(sample(text, "modelpilot_requests_total", model="iris"))
    for i in range(20):
        reply = fresh("POST", f"{server.url}/predict/iris", json={"data": rows[i].tolist()})
        assert reply.status_code == 200
    stopped = live_workers(server)[0]
    os.kill(stopped.pid, signal.SIGTERM)
    stopped.wait(timeout=30)
    seen.clear()

    def restarted(text: str) -> bool:
        seen.append(totals(text))
        alive = {c.pid for c in live_workers(server)}
        counted = sum(sample(text, "modelpilot_requests_total", model="iris")) == answered + 20
        return counted and stopped.pid not in alive and len(alive) == 2

    settled(server.url, restarted, seconds=40)
    assert seen[-1] == (REQUESTS + 20, REQUESTS)
    assert all(classes <= later for (classes, _), (later, _) in itertools.pairwise(seen))
