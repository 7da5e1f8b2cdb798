"""A monitor whose registry and inference log may reach one PostgreSQL by different routes
(one of them through the tests' proxy, to take it down), and the steps its tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap import LocalTap
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.test_tap_process import ROWS


def iris_registries(
    location: str, proxied: str, artifacts: Path, model: Path, reference: pd.DataFrame
) -> tuple[Registry, Registry]:
    """iris:1 (``model``, its ``reference`` with a ``species`` target) registered at
    ``location``; its registry straight on, and through the proxy (at ``proxied``)."""
    direct = Registry.open(location, artifacts)
    register_model(direct, "iris", model, reference=reference, target="species")
    return direct, Registry.open(proxied, artifacts)


def routed_monitor(
    registry: Registry, logged: Registry, tapped: Registry, **kwargs: Any
) -> Monitor:
    """A monitor of ``registry``, its inference log reached through ``logged`` and its tap
    (the monitoring process's work, in this process) looking versions up in ``tapped``."""
    log = InferenceLog(logged.companion_engine("inference-log"))
    return Monitor(registry, tap=LocalTap(tapped, MonitorConfig(), log), **kwargs)


def answer(monitor: Monitor, registry: Registry, ids: list[str]) -> None:
    """``monitor`` answers one-row requests ``ids`` of iris:1, and logs them."""
    version = registry.get_version("iris", 1)
    for n, request_id in enumerate(ids):
        rows = {"input-0": ROWS[n % 3 : n % 3 + 1]}
        monitor.predicted(version, [request_id], [1], rows, {"predict": np.array([n % 3])})
    monitor.flush()


def quality_window(monitor: Monitor) -> list[str]:
    """The request ids in iris:1's quality window on ``monitor``, in the window's order."""
    watched = monitor.model_monitor("iris", 1)
    return [] if watched is None else [row.key[0] for row in watched.performance.rows()]
