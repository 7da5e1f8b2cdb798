"""What the batch metrics count: rows the model scored, calls that answered, and the queue
wait of every request that reached the queue, also of one that gave up there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelpilot.errors import InferenceTimeout, ModelFailure
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

KNOWN = """
import time

import numpy as np

class Model:
    def predict(self, x):
        if np.any(x[:, 0] == -999):
            raise RuntimeError("poison row")
        if np.any(x[:, 0] == 777):
            time.sleep(0.5)
        return (x[:, 0] + x[:, 1] > 0).astype(np.int64)
"""
"""Sums two columns; a row starting -999 makes it fail, one starting 777 makes it slow."""

SERIES = {"model": "known", "version": "1"}


@pytest.fixture
async def watched(
    registry: Registry, tmp_path: Path
) -> AsyncIterator[tuple[InferenceEngine, ProcessMonitoring]]:
    path = tmp_path / "known.py"
    path.write_text(KNOWN)
    register_model(registry, "known", path, flavor="python")
    # No result cache, no inline calls: every request is one the batcher runs on the pool.
    engine = InferenceEngine(registry, make_settings(registry, inline_predict_below_us=0))
    metrics = ProcessMonitoring.for_engine(engine)
    await engine.start()
    yield engine, metrics
    await engine.stop()
    metrics.stop()


def rows(count: int, first: float = 0.5) -> list[list[float]]:
    values = [[0.5, 0.5] for _ in range(count)]
    values[0][0] = first
    return values


def value(metrics: ProcessMonitoring, name: str) -> float:
    metrics.service.flush()
    return metrics.registry.get_sample_value(name, SERIES) or 0.0


async def hold(engine: InferenceEngine) -> asyncio.Task[object]:
    """A slow call that keeps the model busy while the test queues requests behind it."""
    task = asyncio.create_task(engine.infer("known", request_from_rows(rows(1, 777))))
    await asyncio.sleep(0.1)
    return task


async def test_rows_of_a_failed_call_are_not_counted_as_scored(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    """A 30-row request the model failed on added 30 to ``_sum`` ("every row scored") and a
    call to ``_count``, and so to the statistics' inference and execution counts."""
    engine, metrics = watched
    with pytest.raises(ModelFailure, match="poison row"):
        await engine.infer("known", request_from_rows(rows(30, -999)))
    answered = await engine.infer("known", request_from_rows(rows(7)))
    assert answered.outputs[0].data.tolist() == [1] * 7
    assert value(metrics, "modelpilot_batch_size_rows_sum") == 7
    assert value(metrics, "modelpilot_batch_size_rows_count") == 1
    assert value(metrics, "modelpilot_model_call_duration_seconds_count") == 1
    assert value(metrics, "modelpilot_queue_duration_seconds_count") == 2  # both were queued
    (stats,) = metrics.statistics()
    assert (stats.inference_count, stats.execution_count) == (7, 1)
    assert (stats.success.count, stats.fail.count) == (1, 1)


async def test_a_batch_one_request_broke_counts_the_calls_that_answered_its_requests(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    """Three requests queued together behind a busy model, one of them poison: the merged
    call fails and each request then runs alone. That was one observation of all six rows;
    the model answered two calls, of two rows and of three."""
    engine, metrics = watched
    holder = await hold(engine)
    good = [asyncio.create_task(engine.infer("known", request_from_rows(rows(n)))) for n in (2, 3)]
    bad = asyncio.create_task(engine.infer("known", request_from_rows(rows(1, -999))))
    await holder
    assert [len((await g).outputs[0].data) for g in good] == [2, 3]
    with pytest.raises(ModelFailure):
        await bad
    assert value(metrics, "modelpilot_batch_size_rows_sum") == 1 + 2 + 3
    assert value(metrics, "modelpilot_batch_size_rows_count") == 3  # the holder's, and two
    # The requests answered, each once with the call that answered it.
    assert value(metrics, "modelpilot_model_call_duration_seconds_count") == 3
    assert value(metrics, "modelpilot_queue_duration_seconds_count") == 4
    (stats,) = metrics.statistics()
    assert (stats.inference_count, stats.execution_count) == (6, 3)


async def test_requests_that_give_up_in_the_queue_show_their_wait(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    """In an overload where requests time out before their batch starts, the queue-time
    histogram showed none of them: only the requests that reached a batch."""
    engine, metrics = watched
    holder = await hold(engine)
    timed = request_from_rows(rows(1))
    timed.parameters["timeout"] = 100_000  # microseconds: 0.1 s, while the model is busy
    timing_out = asyncio.create_task(engine.infer("known", timed))
    hung_up = asyncio.create_task(engine.infer("known", request_from_rows(rows(4))))
    with pytest.raises(InferenceTimeout):
        await timing_out
    hung_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung_up
    await holder
    assert value(metrics, "modelpilot_queue_duration_seconds_count") == 3  # with the holder
    # The one that timed out waited its 0.1 s; the other until it was given up, after that.
    assert value(metrics, "modelpilot_queue_duration_seconds_sum") >= 0.15
    assert value(metrics, "modelpilot_batch_size_rows_sum") == 1  # the holder's row alone
    assert value(metrics, "modelpilot_batch_size_rows_count") == 1
    assert value(metrics, "modelpilot_model_call_duration_seconds_count") == 1
