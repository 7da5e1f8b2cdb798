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

import pytest

from modelpilot.monitoring import tap_process
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry
from tests.monitoring.test_tap_process import batches, requests

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
