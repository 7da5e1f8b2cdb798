"""The monitor's service history: counted over the latency alert's own threshold, and each
interval stamped and scheduled from when it closed."""

from __future__ import annotations

import time

from modelpilot.monitoring.alerts import AlertRules
from modelpilot.monitoring.history import next_due
from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry


def test_the_latency_alert_judges_its_own_threshold_exactly(labelled_iris: Registry) -> None:
    """``MODELPILOT_ALERT_LATENCY_P99_SECONDS=0.2``: 5 of 305 requests at 235 ms (a p99 17%
    over it) read 199 ms off the buckets (178 to 237 ms), and raised nothing."""
    rules = AlertRules(latency_p99_seconds=0.2, keep_firing_seconds=0.0)
    monitor = Monitor(labelled_iris, alert_rules=rules)
    try:
        assert monitor.history.latency_bound == 0.2
        for i in range(305):
            seconds = 0.235 if i % 61 == 0 else 0.005
            monitor.history.request_finished("iris", "1", "rest", "ok", seconds, None)
        monitor.flush()
        (fired,) = [a for a in monitor.alerts.active.values() if a.rule == "latency"]
        assert "5 of 305 requests, 1.6%, took longer" in fired.message
        assert fired.value > 0.2
    finally:
        monitor.stop()


class SlowTap:
    """A tap whose windows take their time, as the monitoring process's first answer does
    (it starts first): every call but ``states`` goes to the real one."""

    def __init__(self, tap: object, seconds: float) -> None:
        self._tap = tap
        self._seconds = seconds

    def __getattr__(self, name: str) -> object:
        return getattr(self._tap, name)

    def states(self, now: float) -> list[object]:
        time.sleep(self._seconds)  # the wait itself, not a synchronisation
        return list(self._tap.states(now))  # type: ignore[attr-defined]


def test_an_interval_is_stamped_when_it_closes(labelled_iris: Registry) -> None:
    """Stamped with the time the evaluation began, before the tap answered, the first point
    after a start was 1 ms long, and the next evaluation, due at once, closed a point of a
    few ms: 308% CPU on two cores."""
    monitor = Monitor(labelled_iris)
    monitor.tap = SlowTap(monitor.tap, 0.3)  # type: ignore[assignment]
    try:
        before = time.time()
        monitor.flush()
        (point,) = monitor.history.points
        assert point.t >= before + 0.3
        # The next one is due at the next mark of the workers' grid, not at once after it.
        assert monitor._last_evaluation == next_due(point.t, monitor.evaluate_seconds)
        assert monitor._last_evaluation + monitor.evaluate_seconds - point.t >= 0.5
    finally:
        monitor.stop()
