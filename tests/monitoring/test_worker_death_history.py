"""``serve --workers``: a worker that dies keeps its share of the model's totals and of the
service history in every worker's reports until its successor carries them on, and then once.

The tester killed one of three idle workers: ``/api/monitoring/clf`` and the dashboard went
from 9,356 requests to 8,199 for 5-7 s, and the throughput chart lost a third of every past
interval's requests for good (897.7 of the last minute's requests read 650.8 after the kill).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.history import HISTORY_POINTS, ServicePoint
from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.monitor_state import MonitorState
from modelpilot.monitoring.siblings import WorkerExchange, retired_snapshot
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import dead_pid

INTERVAL = 2.0


def point(t: float, requests: int, server_errors: int = 0) -> ServicePoint:
    """An interval of ``requests``, ``server_errors`` of them failed (5xx)."""
    return ServicePoint(
        t, INTERVAL, requests, server_errors, 0.01, 0.01, 0.01, 10.0, 1000, server_errors
    )


def iris_state(registry: Registry, requests: int, labels: int) -> MonitorState:
    """iris:1's state as a worker publishes it, after ``requests`` of one row each and
    ``labels`` labels."""
    version = registry.get_version("iris", 1)
    watched = ModelMonitor(version, registry.reference_profile("iris", 1), MonitorConfig())
    state = watched.state(time.time())
    classes = np.zeros_like(state.classes)
    classes[0] = requests
    return replace(state, requests=requests, rows=requests, labels_total=labels, classes=classes)


def exchange(directory: Path, index: int, pid: int) -> WorkerExchange:
    return WorkerExchange(directory, index, CollectorRegistry(), pid=pid)


def requests_in(monitor: Monitor, since: float) -> int:
    return sum(p.requests for p in monitor.series() if p.t > since)


def test_a_dead_workers_totals_and_history_count_until_its_successor_carries_them(
    labelled_iris: Registry, tmp_path: Path
) -> None:
    now = time.time()
    past = [point(now - 60 + INTERVAL * i, 10, server_errors=i % 2) for i in range(29)]
    # Worker 1, alive, answers the page: it has served nothing itself.
    reader = Monitor(labelled_iris, exchange=exchange(tmp_path, 1, os.getpid()))
    # Worker 0 published its last round, then was killed.
    gone = dead_pid()
    exchange(tmp_path, 0, gone).publish([iris_state(labelled_iris, 60, labels=4)], past)
    try:
        reader.refresh()
        report = reader.report("iris", 1)
        assert (report.requests, report.labels_total) == (60, 4)
        assert requests_in(reader, now - 61) == 290
        # The supervisor sets its snapshot aside for the next worker of its slot.
        (tmp_path / f"worker-{gone}.snapshot").replace(retired_snapshot(tmp_path, 0, gone))
        reader.refresh()
        assert reader.report("iris", 1).requests == 60
        assert requests_in(reader, now - 61) == 290

        # Its successor takes them over: before it publishes, and after, each counts once.
        successor = Monitor(labelled_iris, exchange=exchange(tmp_path, 0, os.getppid()))
        try:
            for _ in range(2):  # its own first round: it publishes what it carries
                successor.refresh()
                reader.refresh()
                assert reader.report("iris", 1).requests == 60
                assert successor.report("iris", 1).requests == 60
                assert requests_in(reader, now - 61) == requests_in(successor, now - 61) == 290
            assert not list(tmp_path.glob("retired-*"))
            # The failures it answered in its last minute still count for the error rate.
            window = [p for p in reader.series() if p.t > now - 60]
            assert sum(p.server_errors for p in window) == 14
        finally:
            successor.stop()
    finally:
        reader.stop()


def test_a_successor_carries_its_predecessors_points_until_they_age_out(tmp_path: Path) -> None:
    """One history of ``HISTORY_POINTS`` for the slot: the predecessor's oldest points go as
    the successor's own come, and a chain of deaths keeps no more than that."""
    first = dead_pid()
    exchange(tmp_path, 0, first).publish(
        [], [point(1000.0 + INTERVAL * i, 1) for i in range(HISTORY_POINTS)]
    )
    (tmp_path / f"worker-{first}.snapshot").replace(retired_snapshot(tmp_path, 0, first))
    second_pid = dead_pid()
    second = exchange(tmp_path, 0, second_pid)
    second.inherit()
    assert len(second.carried_points) == HISTORY_POINTS
    own = [point(5000.0 + INTERVAL * i, 2) for i in range(10)]
    second.publish([], own)
    assert len(second.carried_points) == HISTORY_POINTS - 10
    assert second.carried_points[0].t == 1000.0 + INTERVAL * 10  # the oldest went first
    second.retire()
    third = exchange(tmp_path, 0, os.getppid())
    third.inherit()  # the first's points, through the second, and the second's own
    carried = third.carried_points
    assert len(carried) == HISTORY_POINTS and carried[-10:] == own
    reader = exchange(tmp_path, 1, os.getpid())
    third.publish([], [])
    live, gone = reader.siblings()
    assert [s.pid for s in live] == [os.getppid()] and gone == []
    assert live[0].carried_points == carried
