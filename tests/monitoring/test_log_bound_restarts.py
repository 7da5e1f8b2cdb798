"""The inference log's bound holds across restarts, replaced monitoring processes and workers.

A tester restarted a server 14 times with ``MODELPILOT_INFERENCE_LOG_MAX_ROWS=1000``, sending
95 requests each time: the log held 1,330 requests, 95 more after every life. Each process
counted its own writes from its start and trimmed after a tenth of the bound, so a log whose
servers (or monitoring processes, or each of several workers) wrote fewer than that per life
was never trimmed at all. The log now counts what it holds itself.
"""

from __future__ import annotations

import numpy as np

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from modelpilot.registry.store import Registry


def requests(prefix: str, count: int) -> LogBatch:
    """``count`` one-row requests of ``m``:1, ids ``<prefix><i>``, as one round."""
    return log_batch(
        "m",
        1,
        [f"{prefix}{i}" for i in range(count)],
        [1_000.0 + i for i in range(count)],
        [1] * count,
        {"x": np.arange(count, dtype=np.float64).reshape(count, 1)},
        {"y": np.arange(count, dtype=np.int64)},
    )


def opened(registry: Registry, max_rows: int) -> InferenceLog:
    return InferenceLog(registry.companion_engine("inference-log"), max_rows=max_rows)


def test_lives_that_each_write_less_than_a_tenth_keep_the_bound(log_registry: Registry) -> None:
    """30 lives of 9 requests each (a tenth of the bound is 10): the log stays within its
    bound and a tenth, and holds the newest requests."""
    for life in range(30):
        log = opened(log_registry, max_rows=100)
        try:
            for start in range(0, 9, 3):  # three monitoring rounds a life
                log.append([requests(f"life{life}-{start}-", 3)])
            assert log.count() <= 110, f"after life {life}"
        finally:
            log.close()
    log = opened(log_registry, max_rows=100)
    try:
        newest = [e.request_id for e in log.recent("m", limit=3)]
        assert newest == ["life29-6-0", "life29-6-1", "life29-6-2"]
        assert log.count() >= 100
    finally:
        log.close()


def test_writers_side_by_side_count_each_others_requests(log_registry: Registry) -> None:
    """Three workers' monitoring processes on one log, each writing a few requests a round:
    the bound is the log's, not a tenth more per writer."""
    logs = [opened(log_registry, max_rows=100) for _ in range(3)]
    try:
        for round_ in range(40):
            for n, log in enumerate(logs):
                log.append([requests(f"w{n}-{round_}-", 4)])
                assert log.count() < 110, f"round {round_}, worker {n}"
    finally:
        for log in logs:
            log.close()


def test_a_lowered_bound_holds_from_the_first_write(log_registry: Registry) -> None:
    """A server restarted with a smaller bound trims at its first write, not once it has
    written a tenth of the new bound."""
    log = opened(log_registry, max_rows=1_000)
    try:
        for n in range(50):
            log.append([requests(f"old{n}-", 10)])
    finally:
        log.close()
    log = opened(log_registry, max_rows=100)
    try:
        log.append([requests("new", 1)])
        assert 90 < log.count() <= 100  # batches go whole: 41 of the old ones went
        assert [e.request_id for e in log.recent("m", limit=1)] == ["new0"]
    finally:
        log.close()


def test_a_log_without_a_count_is_counted_at_its_first_write_not_at_open(
    log_registry: Registry,
) -> None:
    """A log of a release before the count (over its bound, as such logs grew): opening it
    reads nothing through, which a server's start would wait for; its first write trims it."""
    log = opened(log_registry, max_rows=1_000)
    try:
        for n in range(30):
            log.append([requests(f"old{n}-", 10)])
    finally:
        log.close()
    engine = log_registry.companion_engine("inference-log")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM inference_log_state")
    finally:
        engine.dispose()
    log = opened(log_registry, max_rows=100)
    try:
        assert log.count() == 300  # nothing trimmed at open
        log.append([requests("new", 1)])
        assert 90 < log.count() <= 100
    finally:
        log.close()
