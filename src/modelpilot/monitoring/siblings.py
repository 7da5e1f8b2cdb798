"""Worker processes of one server share what they measure through one private directory.

``serve --workers N`` gives its workers a directory. Service metrics go there through
prometheus_client's multiprocess mode (``prometheus/``): counters and histograms are summed
over every worker that ever ran, so they never go backwards when one is restarted. A worker
writes its counts there at most ``service.FLUSH_SECONDS`` (1 s) after it counted them, and at
a clean stop: one killed (SIGKILL, the OOM killer) takes what it answered since its last write
with it, and the sums miss those requests for good (a soak of 200 requests/s that killed one
of two workers: 33 of 4,796 answered requests and 66 rows, a third of a second of that
worker's). Exact sums would take a write to the shared files per request, 5-7 us of CPU, a
tenth of a request's cost, which is what gathering the counts saves. What
mode cannot merge, each worker writes as a snapshot every monitoring round: its scrape-time
metrics (engine, process, machine: exported with a ``worker`` label) and its monitoring
windows (merged: bin counts add up, labelled rows pool; the classes of a classifier that names
none, which each worker gives slots as it sees them, add up by name). Whichever worker a
request reaches answers ``/metrics``, ``/api/...`` and the dashboard for the whole server.

``/metrics`` reads every worker's figures, its own included, from the snapshots, so that two
scrapes answered by different workers see the same figures, or newer ones: a counter never goes
back because the scrape went to the other worker. The price is a lag of up to one monitoring
round (``MODELPILOT_MONITOR_INTERVAL_SECONDS``, 2 s) behind the answering worker's live figures.
A worker whose first round has not ended yet (worker 0's waits for the restore from the
inference log) publishes its scrape-time metrics as it answers a scrape: its own figures are in
every scrape it answers, and from then on in every scrape its siblings answer.

A worker that stops (killed, crashed, or stopped on its own) leaves its last snapshot to the
worker started in its place, which carries its running totals (predictions by class, labels)
and its service history (the dashboard's charts, the error-rate and latency alerts' last
minute, until its points age out) on; its windows of recent traffic are lost with it. Until
that worker has published a snapshot that carries them, the dead worker's own snapshot counts,
in every worker's reports, charts and scrapes: a snapshot's totals are counted once all along,
never twice and never dropped (the model's requests and rows read by the dashboard and
``/api/monitoring`` went back by the dead worker's share for the 5-7 s its successor took), and
so are its points (the charts lost a third of every past interval's requests at a death).
What a killed worker counted after its last snapshot is in none: a SIGKILL cannot publish, so
its predictions and labels of up to a monitoring round (``MODELPILOT_MONITOR_INTERVAL_SECONDS``,
2 s) are lost from the totals for good, as its last second is from the service counters and
its last quarter second from the inference log (``MODELPILOT_MONITOR_ROUND_SECONDS``); one that
stops cleanly publishes first and loses none. Its per-worker counters (CPU seconds, monitoring's
own work) carry on in the new worker's the same way, and stand in the scrapes, as it last
published them, until then; its gauges (memory, uptime, requests in flight) go with it. The
machine's counters (disk and network bytes) do not carry on: they are the kernel's running
totals, which the new worker reads afresh. Worker 0 also writes the alert book it decides on
(``alerts.book``), which every worker answers from and its successor takes over.

Snapshots are pickles, written and read only by the server's own processes in a directory
created for them with owner-only permissions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from modelpilot.monitoring.alerts import AlertState
from modelpilot.monitoring.collected import Families
from modelpilot.monitoring.history import HISTORY_POINTS, ServicePoint
from modelpilot.monitoring.monitor_state import MonitorState, totals_of

logger = logging.getLogger(__name__)

ALERTS_FILE = "alerts.book"
"""The alert book of the worker that decides on alerts, beside the snapshots."""

MACHINE_METRICS = "modelpilot_system_"
"""How the machine's metrics are named (``SystemCollector``): its counters are the kernel's
running totals, which a worker started in place of another reads afresh, so they do not carry on
from the dead worker's (the new worker's disk and network bytes were the machine's twice)."""

STALE_SECONDS = 30.0
"""A live worker's snapshot older than this belongs to a worker that stopped reporting: its
windows and scrape-time metrics are ignored (its running totals still count)."""


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
    inherited: frozenset[int] = frozenset()
    """The dead workers (pids) whose running totals ``states`` carry on: the ones this worker
    replaced, and the ones they had replaced."""
    carried_points: list[ServicePoint] = field(default_factory=list)
    """The service history of the workers this one replaced (``inherited``), up to their last
    points, oldest first: theirs to the server's history until it ages out (``points`` and
    these keep ``HISTORY_POINTS`` between them, as one history would)."""


class WorkerExchange:
    """This worker's side of the shared directory: publish own snapshot, read the others'."""

    def __init__(
        self, directory: Path, index: int, local: CollectorRegistry, pid: int | None = None
    ) -> None:
        self.directory = directory
        self.index = index
        self.local = local
        """Scrape-time collectors of this process (engine, system)."""
        self.pid = os.getpid() if pid is None else pid
        self._path = directory / f"worker-{self.pid}.snapshot"
        self._inherited: frozenset[int] = frozenset()
        self._carried: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        """The counters of the workers this one replaces, as they last published them: added
        to this worker's own in every snapshot, so that its per-worker counters (CPU seconds,
        monitoring's own work) carry on where theirs stopped rather than start again at 0."""
        self._carried_totals: list[MonitorState] = []
        """The running totals of the workers this one replaces (``inherit``), which its
        snapshots carry on before its first monitoring round (``publish_metrics``)."""
        self._carried_points: list[ServicePoint] = []
        """The service history of the workers this one replaces (``inherit``), which its
        snapshots carry on until this worker's own history has pushed it out."""
        self._taken: list[Path] = []
        """Dead workers' snapshots taken over (``inherit``), to remove once this worker's
        snapshot carries their totals."""
        self._publishing = threading.Lock()  # the monitor's rounds and scrapes both publish
        self._round_published = False
        self.inherited_alerts: AlertState | None = None
        """The alert book of the worker this one replaces, as it last published it."""
        self._read_cache: dict[Path, tuple[tuple[int, int, int], object]] = {}
        self._read_lock = threading.Lock()  # scrapes and the monitor's thread both read

    def publish(
        self, states: list[MonitorState] | None = None, points: list[ServicePoint] | None = None
    ) -> None:
        """Publish this worker's snapshot at the end of a monitoring round: its scrape-time
        metrics, its monitoring ``states`` (its windows, and the running totals it carries on
        from the workers it replaces) and its service history ``points``."""
        with self._publishing:
            self._write(states or [], points or [])
            self._round_published = True

    def publish_metrics(self) -> None:
        """Publish this worker's scrape-time metrics, and the running totals it carries on,
        if it has not ended a monitoring round yet: scrapes read every worker's figures from
        the snapshots alone, and worker 0's first round waits for the restore from the
        inference log (for 8-15 s after ready, scrapes held not one worker's figures)."""
        with self._publishing:
            if not self._round_published:
                self._write(list(self._carried_totals), [])

    def _write(self, states: list[MonitorState], points: list[ServicePoint]) -> None:
        # The predecessors' points and this worker's as one history of HISTORY_POINTS: theirs
        # go as this worker's own come, as the oldest of one history would.
        room = max(HISTORY_POINTS - len(points), 0)
        self._carried_points = self._carried_points[-room:] if room else []
        snapshot = WorkerSnapshot(
            self.pid,
            self.index,
            time.time(),
            _with_counters(generate_latest(self.local), self._carried),
            states,
            points,
            self._inherited,
            list(self._carried_points),
        )
        temporary = self._path.with_suffix(".tmp")
        temporary.write_bytes(pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temporary, self._path)
        # Only now that this worker's snapshot carries their totals may the dead workers' go
        # (readers skip them anyway, by ``inherited``).
        for path in self._taken:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._taken = []

    def peers(self) -> list[WorkerSnapshot]:
        """The latest snapshots of the other live workers."""
        return [s for s in self.workers() if s.pid != self.pid]

    def siblings(self) -> tuple[list[WorkerSnapshot], list[WorkerSnapshot]]:
        """The other workers' latest snapshots, from one read of the directory: those of the
        live workers (``peers``), and those of workers gone (stopped, or stopped reporting)
        whose totals and history no snapshot carries on yet: this worker's reports count
        both, the live ones' windows and the gone ones' totals and points. From one read, so
        that a successor publishing meanwhile is counted or its predecessor is, not both."""
        workers, retired, carried = self._read_directory()
        # This worker's own inheritance too: its snapshot may not say so yet, and its
        # reports carry those totals (``inherit``) from the start.
        carried |= self._inherited
        now = time.time()
        live = [
            s
            for s in workers
            if s.pid != self.pid and now - s.at <= STALE_SECONDS and _alive(s.pid)
        ]
        counted = carried | {self.pid} | {s.pid for s in live}
        gone: dict[int, WorkerSnapshot] = {}
        for snapshot in [*workers, *retired]:
            if snapshot.pid not in counted:
                gone.setdefault(snapshot.pid, snapshot)
        return (
            sorted(live, key=lambda s: s.index),
            sorted(gone.values(), key=lambda s: (s.index, s.at)),
        )

    @property
    def carried_points(self) -> list[ServicePoint]:
        """The service history of the workers this one replaces, as its snapshots carry it."""
        return self._carried_points

    def workers(self) -> list[WorkerSnapshot]:
        """The latest snapshots of the live workers, this one's included (once published)."""
        now = time.time()
        found = [
            s
            for s in self._read_all("worker-*.snapshot")
            if now - s.at <= STALE_SECONDS and _alive(s.pid)
        ]
        return sorted(found, key=lambda s: s.index)

    def everyone(self) -> list[WorkerSnapshot]:
        """The last snapshot of every worker whose running totals count: each worker's that
        runs or ran, this one's included, but a dead one's only until the worker that took
        its place has published a snapshot that carries its totals on (never both)."""
        workers, retired, carried = self._read_directory()
        found: dict[int, WorkerSnapshot] = {}
        for snapshot in [*workers, *retired]:
            if snapshot.pid not in carried:
                found.setdefault(snapshot.pid, snapshot)
        return sorted(found.values(), key=lambda s: (s.index, s.at))

    def stopped(self) -> list[WorkerSnapshot]:
        """The last snapshots of the workers that stopped and are still in the directory: set
        aside for the workers started in their places (whose first snapshots remove them), or
        not yet (killed a moment ago)."""
        # Retired ones before and after the others: one set aside meanwhile is in either read.
        found = self._read_all("retired-*.snapshot")
        found += [s for s in self._read_all("worker-*.snapshot") if not _alive(s.pid)]
        found += self._read_all("retired-*.snapshot")
        return found

    def inherit(self) -> list[MonitorState]:
        """The monitoring states of the workers this one replaces: workers of its index that
        stopped (killed, crashed, or on their own), whose last snapshots were set aside for it.

        Its caller must publish their totals in every snapshot from then on: each snapshot
        names the workers it carries on, so that readers count their totals in it alone.
        """
        taken = sorted(self.directory.glob(f"retired-{self.index}-*.snapshot"))
        snapshots = [s for s in map(self._read, taken) if s is not None]
        # A predecessor that had itself taken another's over carries that one's totals.
        carried = frozenset().union(*(s.inherited for s in snapshots))
        states: list[MonitorState] = []
        points: list[ServicePoint] = []
        for snapshot in snapshots:
            if snapshot.pid not in carried:
                states.extend(snapshot.states)
                points += [*getattr(snapshot, "carried_points", ()), *snapshot.points]
                for key, value in _counters(snapshot.metrics).items():
                    if not key[0].startswith(MACHINE_METRICS):
                        self._carried[key] = self._carried.get(key, 0.0) + value
        if self.index == 0:
            self.inherited_alerts = self.alerts()
        self._carried_totals = [totals_of(state) for state in states]
        self._carried_points = sorted(points, key=lambda p: p.t)[-HISTORY_POINTS:]
        self._inherited = carried | {s.pid for s in snapshots}
        self._taken = taken
        return states

    def publish_alerts(self, state: AlertState) -> None:
        """Write the alert book (worker 0's, which decides on alerts) as it is now. Written
        whenever it changes and whenever a notification of it is delivered, not once a
        round with the snapshot: a worker 0 killed in between left a book whose delivered
        notifications its successor sent again."""
        path = self.directory / ALERTS_FILE
        temporary = path.with_name(f"{ALERTS_FILE}.{self.pid}.tmp")
        temporary.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temporary, path)

    def alerts(self) -> AlertState | None:
        """The alert book as worker 0 last wrote it (None before it first did). Read every
        evaluation by the other workers, and unpickled again only when it changed (it does
        when an alert fires, resolves or is delivered, not every round)."""
        state = self._load(self.directory / ALERTS_FILE, "the alert book")
        return state if isinstance(state, AlertState) else None

    def retire(self) -> None:
        """Set this worker's last snapshot aside for the worker that will take its place."""
        with contextlib.suppress(FileNotFoundError):
            self._path.replace(retired_snapshot(self.directory, self.index, self.pid))

    def _read_directory(
        self,
    ) -> tuple[list[WorkerSnapshot], list[WorkerSnapshot], frozenset[int]]:
        """Every snapshot in the directory: the workers' latest and the retired ones, and the
        pids whose totals some snapshot among them carries on (``inherited``)."""
        # Retired ones before and after the workers': a snapshot set aside (``retire``, the
        # supervisor) or taken over (``inherit``, then ``publish``) while the directory is
        # read is in one of the three reads.
        retired = self._read_all("retired-*.snapshot")
        workers = self._read_all("worker-*.snapshot")
        retired += self._read_all("retired-*.snapshot")
        carried = frozenset().union(*(s.inherited for s in [*workers, *retired]))
        return workers, retired, carried

    def _read_all(self, pattern: str) -> list[WorkerSnapshot]:
        paths = list(self.directory.glob(pattern))
        return [s for s in map(self._read, paths) if s is not None]

    def _read(self, path: Path) -> WorkerSnapshot | None:
        snapshot = self._load(path, "snapshot")
        return snapshot if isinstance(snapshot, WorkerSnapshot) else None

    def _load(self, path: Path, what: str) -> object | None:
        """The object pickled at ``path`` (``what`` it is, for the log), unpickled again only
        when the file changed: writers replace the file whole, so a new inode, time or size
        is a new object. Both are frozen, so readers may share one."""
        try:
            stat = path.stat()
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            with self._read_lock:
                cached = self._read_cache.get(path)
            if cached is not None and cached[0] == version:
                return cached[1]
            loaded: object = pickle.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError) as exc:
            logger.warning("skipping unreadable %s %s: %s", what, path, exc)
            return None
        with self._read_lock:
            if len(self._read_cache) > 64:  # mostly snapshots of workers long gone
                self._read_cache = {p: v for p, v in self._read_cache.items() if p.exists()}
            self._read_cache[path] = (version, loaded)
        return loaded


def _counters(metrics: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The counter samples of metrics in the text format, by sample name and labels."""
    found = {}
    for family in text_string_to_metric_families(metrics.decode()):
        if family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _with_counters(
    metrics: bytes, carried: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> bytes:
    """``metrics`` (the text format) with ``carried`` added to its counters."""
    if not carried:
        return metrics
    families = list(text_string_to_metric_families(metrics.decode()))
    left = dict(carried)
    for family in families:
        if family.type != "counter":
            continue
        for i, sample in enumerate(family.samples):
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in left:
                family.samples[i] = sample._replace(value=sample.value + left.pop(key))
    for (name, labels), value in left.items():  # series this worker has not (yet) had
        family_name = name.removesuffix("_total")
        target = next((f for f in families if f.name == family_name), None)
        if target is None:
            target = Metric(family_name, "Carried on from a worker this one replaced.", "counter")
            families.append(target)
        target.add_sample(name, dict(labels), value)
    return generate_latest(Families(families))


def _families(snapshot: WorkerSnapshot) -> list[Metric]:
    return list(text_string_to_metric_families(snapshot.metrics.decode()))


def retired_snapshot(directory: Path, index: int, pid: int) -> Path:
    """Where the last snapshot of worker ``pid``, stopped, waits for the next worker of its
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
    """Every live worker's scrape-time metrics, this one's included, by worker: all from
    their snapshots, so that whichever worker answers, a counter never goes back (this
    worker's own figures lag by up to a monitoring round, as its siblings' do; until its first
    round has ended, it publishes them as it is scraped).

    A worker that stopped keeps its counters, as it last published them, until the worker
    started in its place publishes (whose counters carry them on): for the 15 s that took,
    they were gone from the scrapes, their series went stale and their sums went back. Its
    gauges go: they described a process that no longer runs."""

    def __init__(self, exchange: WorkerExchange) -> None:
        self.exchange = exchange

    def collect(self) -> Iterator[Metric]:
        exchange = self.exchange
        try:
            exchange.publish_metrics()  # this worker's own, before its first round
        except OSError:
            logger.exception("could not publish this worker's metrics snapshot")
        # The stopped ones before the live: a successor that publishes in between (which
        # removes its predecessors' snapshots) is in either read.
        stopped = exchange.stopped()
        live = exchange.workers()
        merged: dict[str, Metric] = {}
        for worker in live:
            self._add(merged, _families(worker), worker.index)
        shown = {worker.index for worker in live}
        for worker in sorted(stopped, key=lambda s: s.at, reverse=True):
            # The newest of its index: a successor that stopped too carries the older one's.
            if worker.index not in shown:
                shown.add(worker.index)
                counters = [f for f in _families(worker) if f.type == "counter"]
                self._add(merged, counters, worker.index)
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
