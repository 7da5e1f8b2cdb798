"""Label posts only join labels; the report of their version is made again when it is next
read (or evaluated), not at every post."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.monitoring.model_monitor import ModelMonitor
from modelpilot.registry.store import Registry
from tests.monitoring.test_monitor import watched_predictions


def test_label_posts_make_no_report_and_the_next_read_shows_them_all(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each post of one label made its version's whole report (a bootstrap over the quality
    window) under the monitor's lock: posts that matched were answered at 35 a second."""
    monitor, ids = watched_predictions(labelled_iris, 30)
    made: list[tuple[str, int]] = []
    report = ModelMonitor.report

    def counted(self: ModelMonitor, *args: Any, **kwargs: Any) -> Any:
        made.append(self.version.key)
        return report(self, *args, **kwargs)

    monkeypatch.setattr(ModelMonitor, "report", counted)
    for request_id in ids:
        assert monitor.feedback("iris", {request_id: 0}).accepted == 1
    assert made == []
    performance = monitor.report("iris").performance
    assert performance is not None and performance.labels == 30  # current when read
    assert made == [("iris", 1)]
    monitor.report("iris")
    monitor.reports()
    assert made == [("iris", 1)]  # made once for all of them
    monitor.stop()
