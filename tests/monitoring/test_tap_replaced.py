"""A monitoring process replaced (killed, or killed as hung): the totals it told carry on in
the counters, and every request it took with it is counted and said once."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from modelpilot.monitoring import tap_process, tap_restarts
from modelpilot.monitoring.model_metrics import ModelCollector
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap import TapFailed
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry
from tests.monitoring.test_tap_process import batches, requests


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def test_a_stopped_child_killed_as_hung_has_its_whole_loss_counted_and_said_once(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A tester stopped the monitoring process (SIGSTOP) for 30 s: killed as hung after 20 s,
    it took some 6,300 answered requests with it, in the pipe and waiting for room in it,
    and no counter and no line said so (the replacement's windows lacked them, and their
    labels were refused as unknown)."""
    monkeypatch.setattr(tap_process, "MAX_PENDING", 1 << 20)
    monkeypatch.setattr(tap_process, "QUESTION_SECONDS", 1.0)
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    try:
        tap.take(batches(labelled_iris, 0, 10))
        assert requests(tap) == 10 and tap.pid is not None  # told
        stopped = tap.pid
        os.kill(stopped, signal.SIGSTOP)
        try:
            sent = 10
            for _ in range(60):  # more than the pipe and the buffer hold
                tap.take(batches(labelled_iris, sent, 1000))
                sent += 1000
            refused = tap.dropped
            assert 0 < refused < sent - 10 and tap._data.pending  # some wait, some were refused
            caplog.clear()
            with caplog.at_level(logging.INFO), pytest.raises(TapFailed, match="in time"):
                tap.states(time.time())  # nothing leaves the pipe: taken for hung, killed
        finally:
            _resume(stopped)
        tap._process.join(10)
        assert tap._process.exitcode == -signal.SIGKILL
        with caplog.at_level(logging.INFO):
            tap.take(batches(labelled_iris, sent, 5))  # found dead, and replaced
        assert tap.restarts == 1
        assert tap.dropped == sent - 10  # everything answered after it last told
        states = tap.states(time.time())
        # The new one's 5, and the 10 the stopped one told, carried on.
        assert sum(s.requests for s in states) == 15
        assert sum(int(s.classes.sum()) for s in states) == 15
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 1, said
        assert f"(pid {stopped}) was killed, as it did not answer states in time" in said[0]
        assert f"{sent - 10 - refused} answered requests went unmonitored with it" in said[0]
        assert f"{refused} more were refused as it fell behind (more than 1 MiB" in said[0]
    finally:
        tap.close()


def _class_totals(monitor: Monitor) -> dict[str, float]:
    """``modelpilot_prediction_class_total`` of iris:1, by class, as a scrape reads it."""
    registry = CollectorRegistry()
    registry.register(ModelCollector(monitor))
    return {
        sample.labels["class"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "modelpilot_prediction_class_total"
    }


@pytest.fixture
def alone(labelled_iris: Registry) -> Iterator[tuple[TapProcess, Monitor]]:
    """A monitor and its monitoring process, as a server that serves alone has them: the
    replacement's windows from the inference log. Its thread is not started."""
    spec = TapSpec(labelled_iris.address(), MonitorConfig(), restore=True, restore_after_crash=True)
    tap = TapProcess(spec)
    monitor = Monitor(labelled_iris, tap=tap)
    yield tap, monitor
    monitor.stop()


@pytest.mark.parametrize("fate", ["killed", "hung"])
def test_predictions_by_class_never_go_back_when_the_monitoring_process_is_replaced(
    alone: tuple[TapProcess, Monitor],
    labelled_iris: Registry,
    monkeypatch: pytest.MonkeyPatch,
    fate: str,
) -> None:
    """A single-process server's predictions by class went back to 0 (1,462 to 0, in a
    tester's scrape) when its monitoring process was killed, or killed as hung: the
    evaluation that found it gone forgot the totals it had told."""
    tap, monitor = alone
    monkeypatch.setattr(tap_process, "QUESTION_SECONDS", 1.0)
    # Died young, it is replaced only after a wait: an evaluation comes first.
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.5)
    tap.take(batches(labelled_iris, 0, 12))
    monitor.flush()
    before = _class_totals(monitor)
    assert sum(before.values()) == 12
    assert tap.pid is not None
    gone = tap.pid
    if fate == "killed":
        os.kill(gone, signal.SIGKILL)
        tap._process.join(10)
        monitor.refresh()  # finds it dead: reported without it
    else:
        os.kill(gone, signal.SIGSTOP)
        try:
            monitor.refresh()  # takes it for hung, and kills it: reported without it
        finally:
            _resume(gone)
        tap._process.join(10)
    assert _class_totals(monitor) == before
    monitor.refresh()  # its replacement is not due yet
    assert _class_totals(monitor) == before
    assert monitor.report("iris").requests == 12
    time.sleep(0.6)
    tap.take(batches(labelled_iris, 12, 6))  # replaced
    monitor.flush()
    assert tap.restarts == 1
    after = _class_totals(monitor)
    assert sum(after.values()) == 18 and all(after[c] >= before[c] for c in before)
    assert monitor.report("iris").requests == 18
