"""A served, labelled iris model with monitoring on, and the traffic the tests send it; an
inference log on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_metrics import ModelCollector, MonitorCollector
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.monitor_state import MonitorState
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.monitoring.webhook_receiver import Receiver, receiving

SHIFTED = ["sepal_length", "sepal_width"]

LOG_BOUND = 100
"""Requests the ``log`` fixture's inference log holds at most."""


@pytest.fixture(params=["sqlite", "postgres"])
def log_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry on SQLite, then one on PostgreSQL: where an inference log lives."""
    if request.param == "sqlite":
        location = str(tmp_path / "registry")
    else:
        location = request.getfixturevalue("postgres_location")
    registry = Registry.open(location, tmp_path / "artifacts")
    yield registry
    registry.close()


@pytest.fixture
def log(log_registry: Registry) -> Iterator[InferenceLog]:
    """An inference log of at most ``LOG_BOUND`` requests, on each of ``log_registry``'s."""
    log = InferenceLog(log_registry.companion_engine("inference-log"), max_rows=LOG_BOUND)
    yield log
    log.close()


@dataclass
class Served:
    client: httpx.AsyncClient
    monitoring: ProcessMonitoring
    monitor: Monitor
    registry: Registry
    engine: InferenceEngine


@asynccontextmanager
async def monitored(registry: Registry, **settings: Any) -> AsyncIterator[Served]:
    """An engine over ``registry`` with monitoring on (``settings`` over the environment's),
    its REST app, and an in-process client of it; stopped on the way out."""
    config = make_settings(registry, **settings)
    engine = InferenceEngine(registry, config)
    monitoring = ProcessMonitoring.for_engine(engine, config)
    assert monitoring.monitor is not None
    await engine.start()
    app = create_app(engine, config, monitoring)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Served(client, monitoring, monitoring.monitor, registry, engine)
    finally:
        await engine.stop()
        monitoring.stop()


@pytest.fixture
async def served(labelled_iris: Registry) -> AsyncIterator[Served]:
    async with monitored(labelled_iris, drift_window_rows=400, performance_min_labels=20) as it:
        yield it


@pytest.fixture
def directory_replicas(
    tmp_path: Path, iris_model_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> Iterator[tuple[Registry, Registry]]:
    """Two servers' registries: one SQLite registry directory (``iris``, with its labels),
    opened twice, as two servers started on it open it."""
    first = Registry.open(tmp_path / "registry")
    reference = iris_frame.assign(species=iris_target)
    register_model(first, "iris", iris_model_path, reference=reference, target="species")
    second = Registry.open(tmp_path / "registry")
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def replicas(
    postgres_location: str,
    tmp_path: Path,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> Iterator[tuple[Registry, Registry]]:
    """Two servers' registries: one PostgreSQL registry (``iris``, with its labels), opened
    twice, as replicas behind a load balancer open it."""
    first = Registry.open(postgres_location, tmp_path / "artifacts")
    reference = iris_frame.assign(species=iris_target)
    register_model(first, "iris", iris_model_path, reference=reference, target="species")
    second = Registry.open(postgres_location, tmp_path / "artifacts")
    yield first, second
    first.close()
    second.close()


async def send(client: httpx.AsyncClient, rows: np.ndarray, per_request: int = 10) -> list[str]:
    """Score ``rows`` in requests of ``per_request`` rows; returns the request ids."""
    ids = []
    for start in range(0, len(rows), per_request):
        chunk = rows[start : start + per_request].tolist()
        response = await client.post("/predict/iris", json={"data": chunk})
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


def reference_traffic(frame: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return frame.to_numpy()[rng.integers(0, len(frame), n)]


def shifted_traffic(frame: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    rows = reference_traffic(frame, n, seed).copy()
    rows[:, 0] += 1.5  # sepal_length: about two reference standard deviations
    rows[:, 1] += 1.0  # sepal_width: about two and a half
    return rows


@pytest.fixture
async def metrics_text(served: Served, iris_frame: pd.DataFrame) -> str:
    """/metrics after reference traffic, one label and a monitoring round."""
    ids = await send(served.client, reference_traffic(iris_frame, 100, seed=0))
    served.monitor.flush()
    reply = await served.client.post(
        "/api/feedback/iris", json={"request_id": ids[0], "label": [0] * 10}
    )
    assert reply.status_code == 200
    return (await served.client.get("/metrics")).text


def metric(monitor: Monitor, name: str) -> float | None:
    """``name``'s value as the monitor's Prometheus collectors export it."""
    registry = CollectorRegistry()
    registry.register(ModelCollector(monitor))
    registry.register(MonitorCollector(monitor))
    return registry.get_sample_value(name)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (see ``webhook_receiver``)."""
    with receiving() as server:
        yield server


def dead_pid() -> int:
    """The pid of a process that has exited: a worker that died."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def worker_state(classes: list[int], labels: int = 0) -> MonitorState:
    """iris:1's state as a worker publishes it: ``classes`` predicted, ``labels`` told."""
    return MonitorState(
        model="iris",
        version=1,
        requests=sum(classes),
        rows=sum(classes),
        window_rows=4,
        counts=np.ones(4, dtype=np.int64),
        sums=np.zeros(2),
        recent=None,
        labelled=[],
        labels_total=labels,
        classes=np.array(classes, dtype=np.int64),
    )
