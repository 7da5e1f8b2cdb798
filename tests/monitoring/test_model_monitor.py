"""One version's windows put back from the inference log, whatever its requests look like."""

from __future__ import annotations

import numpy as np

from modelpilot.monitoring.log_records import LogEntry
from modelpilot.monitoring.model_monitor import MonitorConfig, Skipped
from modelpilot.monitoring.tap import monitor_of
from modelpilot.registry.store import Registry

ROW = [5.1, 3.5, 1.4, 0.2]


def logged(n: int, row: list[float] = ROW, predict: object = 0) -> LogEntry:
    """Request ``n`` as the log gives it back: one row of inputs, one of outputs."""
    return LogEntry(f"r{n}", "iris", 1, 1000.0 + n, {"input-0": [row]}, {"predict": [predict]})


def test_requests_the_running_server_binned_apart_are_restored_apart(
    labelled_iris: Registry,
) -> None:
    """A request answered with three columns where the model declared one was binned as it
    came (by its first column), but could not be joined with its neighbours when the windows
    were restored: the restore raised, and the monitoring process died at every start."""
    config = MonitorConfig(window_seconds=1e12)
    monitor = monitor_of({}, labelled_iris, labelled_iris.get_version("iris", 1), config)
    entries = [logged(n) for n in range(10)]
    entries[4] = logged(4, predict=[2, 0, 0])
    entries[6] = logged(6, row=[1.0, 2.0])  # two features of four: no row of this version's
    assert monitor.restore(entries) == Skipped(
        1, "ValueError: expected rows of 4 features, got (1, 2)"
    )
    state = monitor.state(2000.0)
    assert state.window_rows == 9 and state.requests == 0
    assert state.recent is not None and state.recent.shape == (9, 4)  # each row once
    report = monitor.report(2000.0)
    assert report.predictions is not None and report.predictions.classes == {
        "0": 8,
        "1": 0,
        "2": 1,  # the first column of the odd one, as it was binned when answered
    }
    np.testing.assert_array_equal(state.recent[0], ROW)
