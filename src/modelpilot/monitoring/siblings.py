"""Worker processes of one server share what they measure through one private directory.

``serve --workers N`` gives its workers a directory. Service metrics go there through
prometheus_client's multiprocess mode (``prometheus/``): counters and histograms are summed
over every worker that ever ran, so they never go backwards when one is restarted. What that
mode cannot merge, each worker writes as a snapshot every monitoring round: its scrape-time
metrics (engine, process, machine: exported with a ``worker`` label) and its monitoring
windows (merged: bin counts add up, labelled rows pool). Whichever worker a request reaches
answers ``/metrics``, ``/api/...`` and the dashboard for the whole server. A worker that dies
leaves its last snapshot to the worker restarted in its place, which carries its running
totals (predictions by class, labels) on; its windows of recent traffic are lost with it.

Snapshots are pickles, written and read only by the server's own processes in a directory
created for them with owner-only permissions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import MonitorState

logger = logging.getLogger(__name__)

STALE_SECONDS = 30.0
"""A snapshot older than this belongs to a worker that stopped reporting: ignored."""


def prometheus_dir(directory: Path) -> Path:
    """Where prometheus_client's multiprocess files go (``PROMETHEUS_MULTIPROC_DIR``)."""
    return directory / "prometheus"


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    pid: int
    index: int
    at: float
    metrics: bytes
    """The worker's scrape-time metrics in the Prometheus text format."""
    states: list[MonitorState] = field(default_factory=list)
    points: list[ServicePoint] = field(default_factory=list)


class WorkerExchange:
    """This worker's side of the shared directory: publish own snapshot, read the others'."""

    def __init__(self, directory: Path, index: int, local: CollectorRegistry) -> None:
        self.directory = directory
        self.index = index
        self.local = local
        """Scrape-time collectors of this process (engine, system)."""
        self.pid = os.getpid()
        self._path = directory / f"worker-{self.pid}.snapshot"

    def publish(
        self, states: list[MonitorState] | None = None, points: list[ServicePoint] | None = None
    ) -> None:
        snapshot = WorkerSnapshot(
            self.pid,
            self.index,
            time.time(),
            generate_latest(self.local),
            states or [],
            points or [],
        )
        temporary = self._path.with_suffix(".tmp")
        temporary.write_bytes(pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temporary, self._path)

    def peers(self) -> list[WorkerSnapshot]:
        """The latest snapshots of the other live workers."""
        found = []
        now = time.time()
        for path in self.directory.glob("worker-*.snapshot"):
            if path == self._path:
                continue
            try:
                snapshot = pickle.loads(path.read_bytes())
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                logger.debug("skipping unreadable snapshot %s: %s", path, exc)
                continue
            if now - snapshot.at <= STALE_SECONDS and _alive(snapshot.pid):
                found.append(snapshot)
        return sorted(found, key=lambda s: s.index)

    def inherit(self) -> list[MonitorState]:
        """The monitoring states of the workers this one replaces: workers of its index that
        died (killed, crashed), whose last snapshots the supervisor set aside for it. Each is
        taken once (and removed), so that its totals carry on in this worker's, never twice."""
        states: list[MonitorState] = []
        for path in self.directory.glob(f"retired-{self.index}-*.snapshot"):
            try:
                states.extend(pickle.loads(path.read_bytes()).states)
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError) as exc:
                logger.warning("a dead worker's snapshot %s is unreadable: %s", path, exc)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return states

    def retire(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


def retired_snapshot(directory: Path, index: int, pid: int) -> Path:
    """Where the last snapshot of worker ``pid``, dead, waits for the next worker of its
    ``index``."""
    return directory / f"retired-{index}-{pid}.snapshot"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SiblingCollector(Collector):
    """This worker's scrape-time metrics and its siblings' (from their snapshots), by worker."""

    def __init__(self, exchange: WorkerExchange) -> None:
        self.exchange = exchange

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        self._add(merged, self.exchange.local.collect(), self.exchange.index)
        for peer in self.exchange.peers():
            self._add(merged, text_string_to_metric_families(peer.metrics.decode()), peer.index)
        yield from merged.values()

    @staticmethod
    def _add(merged: dict[str, Metric], families: Any, worker: int) -> None:
        for family in families:
            target = merged.get(family.name)
            if target is None:
                target = Metric(family.name, family.documentation, family.type, family.unit)
                merged[family.name] = target
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(worker)}
                target.add_sample(sample.name, labels, sample.value, sample.timestamp)
