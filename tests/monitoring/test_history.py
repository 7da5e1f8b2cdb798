"""The service history: one point per interval, every request counted once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from modelpilot.monitoring.history import (
    ServiceHistory,
    ServicePoint,
    merge_points,
    window_quantile,
)


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


def test_a_windows_percentiles_count_every_request_in_it() -> None:
    """12 slow requests among 112 are the p99, in whichever intervals they fell."""
    history = ServiceHistory()
    for _ in range(100):
        finish(history, 0.002)
    fast = history.close_interval()
    for _ in range(12):
        finish(history, 0.7)
    slow = history.close_interval()
    assert window_quantile([fast, slow], 0.99) == pytest.approx(0.7)
    # Exponential latencies over seven intervals: within a bucket's width of the truth.
    durations = np.random.default_rng(1).exponential(0.01, size=7000)
    points = []
    for chunk in np.array_split(durations, 7):
        for seconds in chunk:
            finish(history, float(seconds))
        points.append(history.close_interval())
    for q in (0.5, 0.95, 0.99):
        truth = np.percentile(durations, q * 100)
        assert truth / 1.34 < window_quantile(points, q) < truth * 1.34
    assert window_quantile([], 0.99) == 0.0


def test_workers_latency_buckets_add_up() -> None:
    one, two = ServiceHistory(), ServiceHistory()
    for _ in range(990):
        finish(one, 0.001)
    for _ in range(10):
        finish(two, 2.0)
    a, b = one.close_interval(now=100.0), two.close_interval(now=100.1)
    merged = merge_points([a], [[b]], interval=2.0)
    assert sum(merged[0].latency_counts) == 1000
    # 10 of 1,000 requests took 2 s, one worker's: the 990th fastest is still a fast one,
    # the 995th a slow one (the workers' worst p99, 2 s, was what the merged point kept).
    assert merged[0].p99 == pytest.approx(2.0)
    assert window_quantile(merged, 0.99) < 0.002
    assert window_quantile(merged, 0.995) == pytest.approx(2.0, rel=0.34)


def test_the_error_rate_alert_names_the_versions_the_server_errors_came_from() -> None:
    """The rule is the whole server's (its model is ""): its message said how many requests
    failed, and an on-call engineer could not tell which model's."""
    from modelpilot.monitoring.alert_rules import service_conditions
    from modelpilot.monitoring.alerts import AlertRules

    histories = [ServiceHistory(), ServiceHistory()]  # two workers
    for worker, history in enumerate(histories):
        for i in range(40):
            history.request_finished("iris", "1", "rest", "ok", 0.001, None)
            if i < 10 + worker:
                history.request_finished("fraud", "3", "rest", "500", 0.001, "ModelFailure")
        history.request_finished("fraud", "unknown", "rest", "503", 0.001, "Overloaded")
        history.request_finished("iris", "1", "rest", "422", 0.001, "InvalidInput")
    own, sibling = ([h.close_interval(now=2.0 + w / 10)] for w, h in enumerate(histories))
    assert own[0].failing == (("fraud:3", 10), ("fraud", 1))
    (merged,) = merge_points(own, [sibling], interval=2.0)
    assert merged.failing == (("fraud:3", 21), ("fraud", 2))
    rule = {c.rule: c for c in service_conditions([merged], AlertRules())}["error_rate"]
    assert rule.holds
    assert rule.message.endswith("; failed: fraud:3 21, fraud 2")
