"""The workers of ``serve --workers`` close their service intervals on one grid, and the merged
history adds up the intervals of the same seconds (tester "multimodel" F2): each worker closed
its 2 s intervals on a clock of its own, merged by the nearest multiple of 2 s, so that one
worker's interval fell in the bucket after the other's for the same seconds; as the traffic
aged out of the error rate's minute, the window held the last interval of the worker that
carried the failing model's requests without the other's, and fired at 7% against 2.4%."""

from __future__ import annotations

import time

from modelpilot.monitoring.alert_rules import service_conditions
from modelpilot.monitoring.alerts import AlertRules
from modelpilot.monitoring.history import ServiceHistory, ServicePoint, merge_points
from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry

INTERVAL = 2.0


def closed(history: ServiceHistory, at: float, good: int, failed: int = 0) -> ServicePoint:
    for _ in range(good):
        history.request_finished("iris", "1", "rest", "ok", 0.001, None)
    for _ in range(failed):
        history.request_finished("broken", "1", "rest", "500", 0.001, None)
    return history.close_interval(now=at)


def test_a_worker_that_closes_late_in_its_round_counts_in_the_same_interval() -> None:
    """Worker 1, which carries broken's requests, closes 1.2 s after worker 0 (a slow round):
    the same seconds, one merged point each, and a window that holds both or neither."""
    zero, one = ServiceHistory(), ServiceHistory()
    own = [closed(zero, 1000.05 + 2 * i, 40) for i in range(5)]
    sibling = [closed(one, 1001.25 + 2 * i, 20, 1) for i in range(5)]
    merged = merge_points(own, [sibling], INTERVAL)
    assert [(p.requests, p.server_errors) for p in merged] == [(61, 1)] * 5
    rules = AlertRules(keep_firing_seconds=0.0)
    for horizon in (1000.0, 1002.0, 1004.0, 1006.0, 1008.0):
        window = [p for p in merged if p.t > horizon]
        assert sum(p.requests for p in window) % 61 == 0
        error_rate = {c.rule: c for c in service_conditions(window, rules)}["error_rate"]
        assert not error_rate.holds, error_rate.message


def test_workers_started_apart_close_their_intervals_together(labelled_iris: Registry) -> None:
    """Two monitors (two workers' threads) started half an interval apart close on the same
    marks, just after them; each on its own clock, they closed half an interval apart."""
    every = 1.0
    first = Monitor(labelled_iris, evaluate_seconds=every)
    second = Monitor(labelled_iris, evaluate_seconds=every)
    first.start()
    time.sleep(every / 2)
    second.start()
    try:
        time.sleep(4.5 * every)
    finally:
        first.stop()
        second.stop()
    # Past their first intervals (each closed when its thread started) and the last (stop).
    ones = [p.t for p in list(first.history.points)[1:-1]]
    twos = [p.t for p in list(second.history.points)[1:-1]]
    assert len(ones) >= 3 and len(twos) >= 3
    for t in twos:
        nearest = min(abs(t - other) for other in ones)
        assert nearest < every / 4, (t, ones)
