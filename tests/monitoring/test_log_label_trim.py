"""The labels of a sampled inference log are bounded as its requests are.

A tester ran a server logging 30% of requests (``MODELPILOT_INFERENCE_LOG_SAMPLE_RATE=0.3``)
with a bound of 100 and labelled every request: the server joins labels of requests the log
left out (it remembers them), and stores them beside the log's. Trimming took only the labels
of the batches it dropped, so the other 70% stayed for good: 1,569 labels for a log holding
none of their requests, growing with every label posted.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from sqlalchemy import text

from modelpilot.monitoring.inference_log import LABELS_GRACE_SECONDS, InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import LOG_BOUND


def sampled(prefix: str, requests: int, at: float, every: int = 3) -> tuple[list[str], LogBatch]:
    """A round of ``requests`` requests answered at ``at``: all their ids, and the batch of the
    log's sample of them (every ``every``-th)."""
    ids = [f"{prefix}{i}" for i in range(requests)]
    logged = ids[::every]
    inputs = {"x": np.arange(len(logged), dtype=np.float64).reshape(-1, 1)}
    outputs = {"y": np.zeros(len(logged), dtype=np.int64)}
    return ids, log_batch("m", 1, logged, [at] * len(logged), [1] * len(logged), inputs, outputs)


def labels_held(log: InferenceLog) -> set[str]:
    return {stored.request_id for stored in log.labels_since(0.0, 1 << 30).get("m", [])}


def test_labels_of_requests_the_log_never_held_go_as_the_log_moves_past_them(
    log: InferenceLog,
) -> None:
    now = time.time()
    for round_number in range(3):  # answered a few minutes ago, labelled now
        ids, batch = sampled(f"o{round_number}-", 90, now - 300 + 100 * round_number)
        log.append([batch])
        log.set_labels("m", {request_id: 1 for request_id in ids})
    assert len(labels_held(log)) == 270  # a third of them for requests the log holds
    # Traffic goes on, past the labels by more than the grace: the log drops every round
    # above, and with them every label, those of requests it never held too.
    later = now + LABELS_GRACE_SECONDS + 30
    for round_number in range(4):
        log.append([sampled(f"n{round_number}-", 150, later + round_number)[1]])
    log.trim()
    assert log.count() == LOG_BOUND
    assert labels_held(log) == set()


def test_labels_the_log_still_has_a_use_for_stay(log: InferenceLog) -> None:
    """Labels of requests it holds stay, and so do those of requests it does not hold posted
    since (or just before) its oldest request: siblings read them, and the grace covers their
    clocks. A label is judged by when it was posted: the log cannot tell the time of a
    request it never held."""
    now = time.time()
    old_ids, old = sampled("old-", 150, now - 600)
    log.append([old])
    log.set_labels("m", {request_id: 1 for request_id in old_ids})
    kept_ids, kept = sampled("kept-", 240, now - 30)  # 80 logged: 130 held, trims "old-"
    log.append([kept])
    log.set_labels("m", {request_id: 2 for request_id in kept_ids})
    log.trim()
    assert log.count() == 80
    unlogged = set(old_ids) - set(old.request_ids)
    assert labels_held(log) == set(kept_ids) | unlogged  # the logged "old-" went with them
    found = log.find("m", kept.request_ids)
    assert len(found) == 80 and all(entry.label == 2 for entry in found.values())


def test_a_postgresql_log_without_autovacuum_says_its_tables_grow(
    log_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """Trimmed rows' space comes back only when vacuumed: with autovacuum off, a tester's log
    of about 100 requests grew from 19 to 171 MB, and nothing said why."""
    engine = log_registry.companion_engine("inference-log")
    off = False
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            off = conn.execute(text("SHOW autovacuum")).scalar() == "off"
    with caplog.at_level(logging.WARNING, "modelpilot.monitoring.inference_log"):
        InferenceLog(engine, max_rows=LOG_BOUND).close()
    warned = [r.getMessage() for r in caplog.records if "autovacuum is off" in r.getMessage()]
    assert len(warned) == (1 if off else 0)
    if off:
        assert "VACUUM inference_log_batches, inference_log_labels" in warned[0]
