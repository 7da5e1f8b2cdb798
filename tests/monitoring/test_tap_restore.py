"""The monitoring process starting again from the inference log: its windows restored from
whatever the log holds, damaged or odd, and carrying on without a log that will not open."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from modelpilot.monitoring import inference_log
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import metric
from tests.monitoring.test_tap_process import ROWS, batches, requests


def _log(registry: Registry, *items: LogBatch) -> InferenceLog:
    log = InferenceLog(registry.companion_engine("inference-log"))
    for item in items:  # a round each
        log.append([item])
    return log


def _logged(first: int, count: int, **outputs: np.ndarray) -> LogBatch:
    """``count`` one-row iris requests r<first>... as the log holds them."""
    ids = [f"r{i}" for i in range(first, first + count)]
    rows = np.concatenate([ROWS[i % 3 : i % 3 + 1] for i in range(first, first + count)])
    predicted = outputs or {"predict": np.array([i % 3 for i in range(first, first + count)])}
    times = [time.time()] * count
    return log_batch("iris", 1, ids, times, [1] * count, {"input-0": rows}, predicted)


def test_a_logged_answer_of_another_shape_is_restored_as_it_was_watched(
    labelled_iris: Registry,
) -> None:
    """A model answered one request with 3 columns where it declared one: binned while the
    server ran (its first column), it stopped every restore after (``setting an array
    element with a sequence``), killing the monitoring process at every start, for every
    model, until it left the log."""
    _log(
        labelled_iris,
        _logged(0, 30),
        _logged(30, 1, predict=np.zeros((1, 3))),
        _logged(31, 9),
    ).close()
    spec = TapSpec(labelled_iris.address(), MonitorConfig(), restore=True)
    tap = TapProcess(spec)
    try:
        [state] = tap.states(time.time())
        assert state.window_rows == 40 and state.requests == 0
        assert tap.failures == 0
        found = tap.lookup("iris", ["r30", "r31"])
        assert np.asarray(found["r30"].outputs["predict"]).shape == (1, 3)
    finally:
        tap.close()


def test_a_damaged_log_is_skipped_where_it_is_damaged_and_said_once(
    labelled_iris: Registry, capfd: pytest.CaptureFixture[str]
) -> None:
    """100 bytes overwritten in a segment file stopped every restore (``JSONDecodeError``):
    the monitoring process crash-looped, dropping every request, taking no label."""
    log = _log(labelled_iris, *(_logged(n * 10, 10) for n in range(6)))
    with labelled_iris.companion_engine("inference-log").connect() as conn:
        table = inference_log.batches
        rows = conn.execute(select(table).order_by(table.c.id)).mappings().all()
    path = Path(str(log._engine.url.database)).with_suffix(".segments") / rows[0]["segment"]
    log.close()
    with open(path, "r+b") as file:
        for damaged in (rows[1], rows[4]):  # past the lengths: the request ids
            file.seek(damaged["segment_offset"] + 48)
            file.write(b"#" * 100)
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig(), restore=True))
    try:
        [state] = tap.states(time.time())
        assert state.window_rows == 40  # the four batches that read
        assert tap.failures == 2  # each damaged batch once
        assert sorted(tap.lookup("iris", ["r5", "r15", "r55"])) == ["r5", "r55"]
        tap.take(batches(labelled_iris, 100, 10))
        tap.set_labels("iris", {"r100": 0, "r5": 1})
        assert requests(tap) == 10
    finally:
        tap.close()
    said = [line for line in capfd.readouterr().err.splitlines() if "cannot be read" in line]
    assert len(said) == 1 and str(path) in said[0]


def test_a_log_that_cannot_be_opened_leaves_monitoring_without_it(
    labelled_iris: Registry, capfd: pytest.CaptureFixture[str]
) -> None:
    """The first 64 bytes of inference-log.db overwritten: the monitoring process died at
    every start ("file is not a database"), and with it drift, predictions, alerts, labels."""
    log = _log(labelled_iris, _logged(0, 10))
    database = Path(str(log._engine.url.database))
    log.close()
    with open(database, "r+b") as file:
        file.write(b"x" * 64)
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig(), restore=True))
    monitor = Monitor(labelled_iris, tap=tap)  # its thread is not started
    version = labelled_iris.get_version("iris", 1)
    try:
        for i in range(20):
            monitor.predicted(
                version, [f"n{i}"], [1], {"input-0": ROWS[:1]}, {"predict": np.array([0])}
            )
        monitor.flush()
        report = monitor.report("iris")
        assert report.requests == 20 and report.drift is not None
        assert monitor.feedback("iris", {"n3": 0, "r3": 0}).unknown == ["r3"]  # joined in memory
        assert monitor.unlogged == 20
        assert metric(monitor, "modelpilot_monitor_unlogged_total") == 20
        assert monitor.failures == 1  # the log that would not open
    finally:
        monitor.stop()
    err = capfd.readouterr().err
    assert err.count("monitoring carries on without the inference log") == 1
    assert "file is not a database" in err
