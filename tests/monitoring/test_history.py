"""The service history: one point per interval, every request counted once."""

from __future__ import annotations

import threading

import numpy as np

from modelpilot.monitoring.history import ServiceHistory, ServicePoint, merge_points


def finish(history: ServiceHistory, seconds: float, status: str = "ok") -> None:
    history.request_finished("m", "1", "rest", status, seconds, None if status == "ok" else "E")


def test_an_interval_holds_its_requests_errors_and_latency_percentiles() -> None:
    history = ServiceHistory()
    durations = np.random.default_rng(0).exponential(0.01, size=1000)
    for i, seconds in enumerate(durations):
        finish(history, float(seconds), "500" if i % 100 == 0 else "422" if i % 100 == 1 else "ok")
    point = history.close_interval()
    assert (point.requests, point.errors, point.server_errors) == (1000, 20, 10)
    expected = np.percentile(durations, [50, 95, 99])
    np.testing.assert_allclose([point.p50, point.p95, point.p99], expected)
    empty = history.close_interval()
    assert (empty.requests, empty.errors, empty.server_errors, empty.p99) == (0, 0, 0, 0.0)
    assert list(history.points) == [point, empty]


def test_requests_recorded_while_intervals_close_are_each_counted_once() -> None:
    history = ServiceHistory(points=100_000)
    total = 200_000
    done = threading.Event()

    def close_meanwhile() -> None:
        while not done.is_set():
            history.close_interval()

    closer = threading.Thread(target=close_meanwhile)
    closer.start()
    for i in range(total):
        finish(history, 0.001, "500" if i % 2 else "ok")
    done.set()
    closer.join()
    history.close_interval()
    assert sum(p.requests for p in history.points) == total
    assert sum(p.errors for p in history.points) == total // 2


def point(t: float, requests: int, memory: int) -> ServicePoint:
    return ServicePoint(t, 2.0, requests, 0, 0.001, 0.002, 0.003, 10.0, memory)


def test_workers_histories_merge_only_where_every_worker_has_published() -> None:
    own = [point(2.0, 10, 100), point(4.0, 10, 100), point(6.0, 10, 100)]
    sibling = [point(2.1, 5, 200), point(4.1, 5, 200)]  # its next point is not out yet
    merged = merge_points(own, [sibling], interval=2.0)
    # Summed without the sibling, the newest interval would show a third of the requests
    # and of the memory: the dashboard's lines dropped at their right end.
    assert [(p.requests, p.memory_bytes) for p in merged] == [(15, 300), (15, 300)]
    assert merge_points(own, [[]], interval=2.0) == own  # a sibling that has not published
    assert len(merge_points(own, [sibling, [*sibling, point(6.1, 5, 200)]], 2.0)) == 2


def test_a_worker_that_closed_two_intervals_in_one_counts_once_in_its_levels() -> None:
    # Labels close an interval early: that worker's memory was summed twice, and the
    # dashboard's memory line jumped by half at every feedback call.
    own = [point(2.0, 10, 100), point(3.6, 4, 110), point(4.1, 6, 120)]
    sibling = [point(2.1, 5, 200), point(4.0, 5, 200)]
    merged = merge_points(own, [sibling], interval=2.0)
    assert [(p.requests, p.memory_bytes) for p in merged] == [(15, 300), (15, 320)]
    assert merged[1].seconds == 4.0  # the two intervals of the one worker, end to end
