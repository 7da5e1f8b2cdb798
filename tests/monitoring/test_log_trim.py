"""The inference log's bound when one batch holds more requests than it: the newest stay.

A tester found the log empty half the time at ``max_rows=100`` and 8,000 requests/s: each
round (one batch) held more requests than the bound, and trimming, which drops whole
batches, dropped it too, so labels joined nothing and ``modelpilot drift`` read no window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import LOG_BOUND


def a_round(prefix: str, requests: int, words: bool = False) -> LogBatch:
    """A round of ``requests`` requests of one or two rows each (packed numbers, or JSON
    when ``words``): request ``i``'s input rows are ``[[k, k + 0.5]]`` for its row numbers
    ``k``, and its outputs name them."""
    rows = [1 + i % 2 for i in range(requests)]
    numbers = np.arange(sum(rows), dtype=np.float64)
    inputs = {"x": np.stack([numbers, numbers + 0.5], axis=1)}
    outputs = numbers.astype(str).astype(object) if words else numbers.astype(np.int64)
    ids = [f"{prefix}{i}" for i in range(requests)]
    times = [1_000.0 + i / 1_000 for i in range(requests)]
    return log_batch("m", 1, ids, times, rows, inputs, {"y": outputs})


def expected(batch: LogBatch, position: int, words: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the log should give back for request ``position`` of ``batch``."""
    first = sum(batch.rows[:position])
    numbers = [float(k) for k in range(first, first + batch.rows[position])]
    outputs = [str(k) for k in numbers] if words else [int(k) for k in numbers]
    return {"x": [[k, k + 0.5] for k in numbers]}, {"y": outputs}


@pytest.mark.parametrize("words", [False, True], ids=["packed", "json"])
def test_a_batch_larger_than_the_bound_keeps_its_newest_requests(
    log: InferenceLog, words: bool
) -> None:
    batch = a_round("r", 250, words)
    log.append([batch])
    newest_ids = batch.request_ids[-LOG_BOUND:]
    found = log.find("m", batch.request_ids)
    assert sorted(found) == sorted(newest_ids)  # the newest 100, not none
    for position in (150, 151, 249):
        entry = found[f"r{position}"]
        assert (entry.inputs, entry.outputs) == expected(batch, position, words)
        assert entry.created_at == batch.times[position]
    window = log.recent("m")
    assert [e.request_id for e in window] == newest_ids
    assert log.count() == LOG_BOUND and log.left_out == 150


def test_rounds_larger_than_the_bound_leave_the_newest_round_every_time(
    log: InferenceLog,
) -> None:
    """As the tap writes them: four rounds a write, each larger than the bound; labels
    posted after each write join the newest requests."""
    for write in range(3):
        rounds = [a_round(f"w{write}-{n}-", 400) for n in range(4)]
        log.append(rounds)
        newest_ids = rounds[-1].request_ids[-LOG_BOUND:]
        assert [e.request_id for e in log.recent("m")] == newest_ids
        log.set_labels("m", {rid: 1 for rid in newest_ids})
        found = log.find("m", [rid for r in rounds for rid in r.request_ids])
        assert sorted(found) == sorted(newest_ids)
        assert all(e.label == 1 for e in found.values())
        assert log.count() == LOG_BOUND
    assert log.left_out == 3 * 4 * (400 - LOG_BOUND)


def test_a_trim_keeps_the_newest_batch_even_when_another_writer_made_it_larger(
    log_registry: Registry, log: InferenceLog
) -> None:
    """A server with a larger bound (or an earlier release) on the same database writes
    batches larger than this one's bound: its trims must not leave the log empty."""
    other = InferenceLog(log_registry.companion_engine("inference-log"), max_rows=10_000)
    try:
        log.append([a_round("a", 30)])
        other.append([a_round("b", 300)])
        assert log.trim() == 30
        assert len(log.recent("m")) == 300 and log.count() == 300
        assert sorted(log.find("m", ["a0", "b0", "b299"])) == ["b0", "b299"]
        log.append([a_round("c", 40)])  # trimmed after: the larger batch goes now
        assert [e.request_id for e in log.recent("m")] == [f"c{i}" for i in range(40)]
    finally:
        other.close()


def test_a_batch_within_the_bound_is_written_as_it_is(log: InferenceLog) -> None:
    batch = a_round("r", LOG_BOUND)
    log.append([batch])
    assert sorted(log.find("m", batch.request_ids)) == sorted(batch.request_ids)
    assert log.left_out == 0
