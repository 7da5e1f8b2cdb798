"""The monitor's state as one JSON document: what ``/api/dashboard`` serves the live page."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.system import MachineCpu, disk_bytes

if TYPE_CHECKING:
    from modelpilot.serving.engine import InferenceEngine


def model_overview(report: ModelReport) -> dict[str, Any]:
    performance = None
    if report.performance is not None:
        performance = {
            **report.performance.to_dict(),
            "history": report.performance_history,
        }
    return {
        "name": report.model,
        "version": report.version,
        "requests": report.requests,
        "rows": report.rows,
        "drift": report.drift.to_dict() if report.drift is not None else None,
        "drift_unwatched": report.drift_unwatched or None,
        "predictions": report.predictions.to_dict() if report.predictions is not None else None,
        "performance": performance,
        "concept_drift": report.concept_drift,
    }


def service_point(point: ServicePoint) -> dict[str, float | None]:
    """One interval as the charts draw it: an interval without requests has no latency
    (None, a gap in the chart), not a latency of 0 ms."""
    data: dict[str, float | None] = {**point.to_dict()}
    if not point.requests:
        data.update(p50_ms=None, p95_ms=None, p99_ms=None)
    return data


class Overview:
    """Service history, every served model, active alerts and the machine, for the dashboard.

    One for each server process, kept between requests: it holds the dashboard's own reader of
    the machine's CPU, whose interval nobody else's reading shortens.
    """

    def __init__(
        self, monitor: Monitor, engine: InferenceEngine, cpu: MachineCpu | None = None
    ) -> None:
        self.monitor = monitor
        self.engine = engine
        self.cpu = cpu or MachineCpu()

    def read(self) -> dict[str, Any]:
        now = time.time()
        process = psutil.Process()
        with process.oneshot():
            rss = process.memory_info().rss
        disk = disk_bytes()
        net = psutil.net_io_counters()
        points = [service_point(p) for p in self.monitor.series()]
        last = points[-1] if points else None
        book = self.monitor.alert_state()
        return {
            "time": now,
            "uptime_seconds": now - self.monitor.started_at,
            "series": points,
            "system": {
                "workers": self.engine.settings.workers,
                # The server's, as the chart draws them: its serving and monitoring processes',
                # every worker's added up (see ``ServicePoint``, ``merge_points``); of them,
                # the monitoring processes'. None until the first interval closes.
                "cpu_percent": last["cpu_percent"] if last else None,
                "memory_bytes": last["memory_bytes"] if last else None,
                "monitor_cpu_percent": last["monitor_cpu_percent"] if last else None,
                "monitor_memory_bytes": last["monitor_memory_bytes"] if last else None,
                "process_memory_bytes": rss,  # this worker's serving process alone
                "machine_cpu_percent": self.cpu.share() * 100,
                "memory_percent": psutil.virtual_memory().percent,
                # The machine's physical disks (see ``disk_bytes``), as /metrics counts them.
                "disk_read_bytes": disk[0] if disk else None,
                "disk_write_bytes": disk[1] if disk else None,
                "net_sent_bytes": net.bytes_sent if net else None,
                "net_recv_bytes": net.bytes_recv if net else None,
            },
            "models": self._models(),
            "alerts": [a.to_dict() for a in book.active],
            "pending_alerts": book.waiting(self.monitor.rules.for_seconds),
        }

    def _models(self) -> list[dict[str, Any]]:
        """Every version with a report; then each served version without one, with no traffic
        yet (the monitor reports on a version only once it has answered requests).

        One entry per version, each saying whether it is ``serving`` (the version a request
        without a version goes to now): after ``modelpilot alias`` moves traffic, the old
        version's report stays beside the new one's, and the page must tell them apart and
        show the one that serves. Each drift report carries ``dataset_share``, the share of
        drifted features that makes dataset drift, for the page to say how far a window is
        from it (an alert fires on any drifted feature; the dataset verdict needs the share).
        """
        serving = {
            (name, str(version.version))
            for name, version in self.engine.served.current_versions()
            if version is not None and self.engine.served.is_served(name)
        }
        reports = self.monitor.reports()
        reported = {(r.model, r.version) for r in reports}
        idle = [
            ModelReport(
                model=name,
                version=version,
                requests=0,
                rows=0,
                drift=None,
                predictions=None,
                performance=None,
                performance_history=[],
            )
            for name, version in sorted(serving)
            if (name, version) not in reported
        ]
        share = self.engine.settings.drift_dataset_share
        models = []
        for report in [*reports, *idle]:
            entry = model_overview(report)
            entry["serving"] = (report.model, report.version) in serving
            if entry["drift"] is not None:
                entry["drift"]["dataset_share"] = share
            models.append(entry)
        return models
