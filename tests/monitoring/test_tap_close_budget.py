"""Closing the monitoring process keeps to one budget: a child that does not finish writing is
killed ``CLOSE_SECONDS`` after it was asked to close, and says what was lost; it had a minute
for its answer and another for its exit, past Kubernetes' 30 s for a pod to stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest

from modelpilot.monitoring import monitor as monitor_module
from modelpilot.monitoring import tap_process
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry
from tests.monitoring.test_tap_process import ROWS, batches, requests

LATEST_SECONDS = 40.0
"""Well past the budget (10 s) and well short of the minute the close had before: what a
loaded machine adds to the kill and the join stays far inside it."""


@pytest.fixture
def tap(labelled_iris: Registry) -> Iterator[TapProcess]:
    process = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    yield process
    process.close()


def test_a_child_that_does_not_write_in_time_is_killed_within_the_budget(
    tap: TapProcess, labelled_iris: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    tap.take(batches(labelled_iris, 0, 10))
    tap.write()
    assert requests(tap) == 10 and tap.pid is not None  # up, answering, and written
    stuck = tap.pid
    tap.take(batches(labelled_iris, 10, 5))
    os.kill(stuck, signal.SIGSTOP)  # as a child starved of CPU, to the extreme
    try:
        with caplog.at_level(logging.ERROR, logger=tap_process.__name__):
            asked = time.monotonic()
            tap.close()
            took = time.monotonic() - asked
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stuck, signal.SIGCONT)
    assert took < LATEST_SECONDS
    assert tap._process.exitcode == -signal.SIGKILL
    assert tap.pid == stuck  # not replaced while closing
    (said,) = [
        r.getMessage() for r in caplog.records if "did not write what it held" in r.getMessage()
    ]
    assert f"within {tap_process.CLOSE_SECONDS:g} s" in said and "is lost" in said
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 10  # the five handed over after are lost
    log.close()


def test_a_child_that_writes_in_time_closes_cleanly(
    tap: TapProcess, labelled_iris: Registry
) -> None:
    tap.take(batches(labelled_iris, 0, 300))
    tap.close()
    assert tap._process.exitcode == 0
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 300
    log.close()


def test_stopping_the_monitor_keeps_to_one_budget_with_a_child_that_never_answers(
    labelled_iris: Registry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor's stop asked the stuck child to write (20 s), then for its windows (a new
    child, started meanwhile, up to a minute and 20 s more), before the close's 10 s: a pod
    was killed long before. Now the last evaluation and the close share ``STOP_SECONDS``."""
    monkeypatch.setattr(monitor_module, "STOP_SECONDS", 3.0)
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    monitor = Monitor(labelled_iris, tap=tap)  # its thread is not started
    version = labelled_iris.get_version("iris", 1)
    monitor.predicted(version, ["a"], [1], {"input-0": ROWS[:1]}, {"predict": np.array([0])})
    monitor.flush()
    assert monitor.report("iris").requests == 1 and tap.pid is not None
    stuck = tap.pid
    monitor.predicted(version, ["b"], [1], {"input-0": ROWS[:1]}, {"predict": np.array([0])})
    os.kill(stuck, signal.SIGSTOP)
    try:
        with caplog.at_level(logging.ERROR, logger=tap_process.__name__):
            asked = time.monotonic()
            monitor.stop()
            took = time.monotonic() - asked
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stuck, signal.SIGCONT)
    assert monitor_module.STOP_SECONDS - 1 < took < monitor_module.STOP_SECONDS + 8
    assert tap.restarts == 0 and tap.pid == stuck  # not replaced while stopping
    assert tap._process.exitcode == -signal.SIGKILL
    said = [
        r.getMessage() for r in caplog.records if "did not write what it held" in r.getMessage()
    ]
    assert len(said) == 1 and f"within {monitor_module.STOP_SECONDS:g} s" in said[0]
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 1  # "b" is lost, and said to be
    log.close()
