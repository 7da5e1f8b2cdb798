"""The monitor's state as one JSON document: what ``/api/dashboard`` serves the live page."""

from __future__ import annotations

import time
from typing import Any

import psutil

from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor import Monitor


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
        "predictions": report.predictions.to_dict() if report.predictions is not None else None,
        "performance": performance,
        "concept_drift": report.concept_drift,
    }


def overview(monitor: Monitor) -> dict[str, Any]:
    """Service history, every watched version, active alerts and the machine, right now."""
    now = time.time()
    process = psutil.Process()
    with process.oneshot():
        rss = process.memory_info().rss
    disk = psutil.disk_io_counters()
    net = psutil.net_io_counters()
    points = [p.to_dict() for p in monitor.series()]
    return {
        "time": now,
        "uptime_seconds": now - monitor.started_at,
        "series": points,
        "system": {
            "cpu_percent": points[-1]["cpu_percent"] if points else 0.0,
            "machine_cpu_percent": psutil.cpu_percent(None),
            "memory_percent": psutil.virtual_memory().percent,
            "process_memory_bytes": rss,
            "disk_read_bytes": disk.read_bytes if disk else None,
            "disk_write_bytes": disk.write_bytes if disk else None,
            "net_sent_bytes": net.bytes_sent if net else None,
            "net_recv_bytes": net.bytes_recv if net else None,
        },
        "models": [model_overview(r) for r in monitor.reports()],
        "alerts": [a.to_dict() for a in list(monitor.alerts.active.values())],
    }
