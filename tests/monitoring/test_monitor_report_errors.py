"""A version whose report fails at every evaluation is logged once a minute, not each time."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from modelpilot.monitoring import monitor as monitor_module
from modelpilot.monitoring.model_monitor import ModelMonitor
from tests.monitoring.conftest import Served, reference_traffic, send


async def test_a_report_failing_every_evaluation_is_logged_once_and_counted_each_time(
    served: Served,
    iris_frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """(Its known cause, a categorical feature whose reference values were all held once,
    is fixed: see test_drift_values_of_their_own.py; this stands in for the next.) Each
    evaluation logged a traceback: one every two seconds, for as long as it lasted."""
    await send(served.client, reference_traffic(iris_frame, 50, seed=0))
    served.monitor.flush()
    before = served.monitor.failures

    def failing(self: ModelMonitor, *args: object, **kwargs: object) -> object:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(ModelMonitor, "report", failing)
    with caplog.at_level(logging.ERROR, logger=monitor_module.__name__):
        for _ in range(3):
            served.monitor.flush()
    logged = [r for r in caplog.records if "monitoring report of iris:1 failed" in r.message]
    assert len(logged) == 1, [r.message for r in logged]
    assert logged[0].getMessage() == "monitoring report of iris:1 failed: float division by zero"
    assert logged[0].exc_info is not None
    assert served.monitor.failures == before + 3
