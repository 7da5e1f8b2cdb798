"""The quality history the dashboard's accuracy chart draws: a stretch in which the quality
window held no labels is a gap, not a line from the accuracy before to the one after."""

from __future__ import annotations

from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.quality_history import QualityHistory
from modelpilot.registry.store import Registry


def test_an_empty_quality_window_is_a_gap_between_the_points(labelled_iris: Registry) -> None:
    """The tester's case: labels at accuracy 0.5 aged out of a 40 s window, 50 s without
    labels, then labels at accuracy 1.0; the history went from 0.5 straight to 1.0."""
    version = labelled_iris.get_version("iris", 1)
    profile = labelled_iris.reference_profile("iris", 1)
    monitor = ModelMonitor(version, profile, MonitorConfig(performance_seconds=40.0))
    for i in range(20):
        monitor.label(i % 3, (i % 3) if i % 2 else (i + 1) % 3, None, at=1000.0 + i / 10)
    before = monitor.report(1003.0).performance_history
    assert len(before) == 1 and before[0]["accuracy"] == 0.5
    for now in (1050.0, 1052.0, 1054.0):  # aged out: three evaluations of an empty window
        monitor.report(now)
    for i in range(20):
        monitor.label(i % 3, i % 3, None, at=1100.0 + i / 10)
    history = monitor.report(1103.0).performance_history
    assert [round(p["t"]) for p in history] == [1003, 1054, 1103]  # the stretch is one gap
    assert history[1] == {"t": 1054.0}  # no metric: the chart breaks its line there
    assert history[0]["accuracy"] == 0.5 and history[2]["accuracy"] == 1.0


def test_no_gap_before_the_first_point_and_one_a_stretch() -> None:
    history = QualityHistory(points=3)
    history.record(1.0, {})
    assert history.points() == []
    history.record(2.0, {"accuracy": 0.9})
    history.record(3.0, {})
    history.record(4.0, {})
    assert history.points() == [{"t": 2.0, "accuracy": 0.9}, {"t": 4.0}]
    history.record(5.0, {"accuracy": 0.8})
    history.record(6.0, {"accuracy": 0.7})  # the oldest goes: three points at most
    assert [p["t"] for p in history.points()] == [4.0, 5.0, 6.0]
