"""The monitor's state as one JSON document: what ``/api/dashboard`` serves the live page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import psutil

from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.statistics import VersionStatistics
from modelpilot.monitoring.system import MachineCpu, disk_bytes
from modelpilot.monitoring.version_errors import VersionTraffic

if TYPE_CHECKING:
    from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger(__name__)

FIRST_READ_WAIT_SECONDS = 5.0
"""How long a worker's first answer waits for its siblings' figures (as ``/metrics``'s first
scrapes do): longer than a monitoring process takes to start, short for a page to wait."""

READ_WAIT_SECONDS = 1.0
"""How long a later answer, before the worker's first monitoring round has ended, waits for
reports made again with its siblings' figures; they go on for the next answer."""


def model_overview(
    report: ModelReport,
    sample_rate: float = 1.0,
    answered: int | None = None,
    traffic: VersionTraffic | None = None,
) -> dict[str, Any]:
    """One version's report as the API and the page show it.

    ``sample_rate`` is the share of model calls the monitor watches
    (``MODELPILOT_MONITOR_SAMPLE_RATE``): ``requests`` counts those alone. Below 1,
    ``answered`` is every request the version answered (the service's count, as ``/metrics``
    has it): "202 requests since start" of a version that had answered 401 told an operator
    it had served half its traffic. ``traffic``: the version's requests and server errors of
    late, every request counted (``Monitor.traffic``): the report counts the answers it
    watched, and of a version that failed every request, none."""
    performance = None
    if report.performance is not None:
        performance = {
            **report.performance.to_dict(),
            # Why ``judged`` is false, for the page to say it ("" where it is true).
            "unjudged": report.performance.unjudged,
            "history": report.performance_history,
        }
    return {
        "name": report.model,
        "version": report.version,
        "requests": report.requests,
        "rows": report.rows,
        "monitor_sample_rate": sample_rate,
        "requests_answered": answered if sample_rate < 1 else None,
        "drift": report.drift.to_dict() if report.drift is not None else None,
        "drift_unwatched": report.drift_unwatched or None,
        "quality_unjudged": report.quality_unjudged or None,
        "predictions": report.predictions.to_dict() if report.predictions is not None else None,
        "performance": performance,
        "concept_drift": report.concept_drift,
        "traffic": traffic.to_dict() if traffic is not None else None,
    }


def dumps(value: Any) -> bytes:
    """``value`` as JSON, as the API answers it: NaN and infinities as null, NumPy values as
    their Python kin."""
    return orjson.dumps(
        value, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class SerialisedEntries:
    """Each version's entry (``model_overview``) as JSON, made once per report.

    A report is made again every evaluation (``evaluate_seconds``) and replaced whole, never
    changed: every reader until the next shares the one made of it. Built and serialised
    for every reader, a 2,000-feature model's entry (892 KB) took 35-150 ms each time, for
    every open dashboard page every 2 s and every poller of ``/api/monitoring``. The fields
    that change between readers of one report (``requests_answered``, ``serving``,
    ``traffic``) are added to the entry kept."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str, float | None], tuple[ModelReport, float, bytes]] = {}

    def entry(
        self,
        report: ModelReport,
        sample_rate: float,
        answered: int | None = None,
        serving: bool | None = None,
        dataset_share: float | None = None,
        traffic: VersionTraffic | None = None,
    ) -> bytes:
        """``model_overview(report, sample_rate, answered, traffic)`` as JSON, with ``serving``
        if given, and the drift's ``dataset_share`` if given (as the dashboard has them)."""
        key = (report.model, report.version, dataset_share)
        made = self._made.get(key)
        if made is None or made[0] is not report or made[1] != sample_rate:
            # Keyed by the report itself: the one kept is the one it was made of, so no
            # other can take its id while it is here.
            data = model_overview(report, sample_rate)
            del data["requests_answered"], data["traffic"]
            if dataset_share is not None and data["drift"] is not None:
                data["drift"]["dataset_share"] = dataset_share
            made = (report, sample_rate, dumps(data))
            self._made[key] = made
        added: dict[str, Any] = {
            "requests_answered": answered if sample_rate < 1 else None,
            "traffic": traffic.to_dict() if traffic is not None else None,
        }
        if serving is not None:
            added["serving"] = serving
        return made[2][:-1] + b"," + dumps(added)[1:]

    def forget(self, kept: Iterable[tuple[str, str]]) -> None:
        """Drop the entries of versions but ``kept`` (model, version)."""
        keep = set(kept)
        for key in [k for k in self._made if (k[0], k[1]) not in keep]:
            self._made.pop(key, None)


def joined(entries: Iterable[bytes]) -> bytes:
    """JSON entries as one JSON array."""
    return b"[" + b",".join(entries) + b"]"


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

    With worker processes (``serve --workers``) any worker answers for the whole server: its
    uptime is the supervisor's, its memory counts the supervisor's, and a worker's first
    answers wait for its siblings' figures (``settle``).
    """

    def __init__(
        self,
        monitor: Monitor,
        engine: InferenceEngine,
        cpu: MachineCpu | None = None,
        statistics: Callable[[], Iterable[VersionStatistics]] | None = None,
    ) -> None:
        self.monitor = monitor
        self.engine = engine
        self.cpu = cpu or MachineCpu()
        self.statistics = statistics
        """Each version's service statistics (``ProcessMonitoring.statistics``), whose
        requests the entries count beside the watched ones when the monitor samples."""
        self.supervisor = _supervisor(engine) if monitor.exchange is not None else None
        """The process that runs this worker and its siblings, if this is a worker."""
        self.started_at = _started_at(self.supervisor, monitor.started_at)
        """When the server started: its supervisor, with workers; each worker's own start made
        the page's uptime jump between answers after a worker was restarted (6 min, 1 min)."""
        self._seen = False
        self._reporting: asyncio.Task[None] | None = None
        self._serialised = SerialisedEntries()

    async def settle(self) -> None:
        """Until this worker's first monitoring round has ended, report again with its sibling
        workers' latest snapshots, which each round gathers.

        Until then its reports and service history held its own figures alone: a worker
        started in place of one that died answered the page with an empty server (0
        requests, no charts) for 20 s, while its sibling answered with the server's, answer
        after answer. Its first answer waits up to ``FIRST_READ_WAIT_SECONDS`` for every
        worker's snapshot and the reports made with them, as ``/metrics``'s first scrapes
        do; later ones up to ``READ_WAIT_SECONDS`` (the reports wait on this worker's
        monitoring process, which may still be starting, and go on for the next answer).
        """
        exchange = self.monitor.exchange
        if exchange is None or self.monitor.history.points:
            return
        first, self._seen = not self._seen, True
        budget = FIRST_READ_WAIT_SECONDS if first else READ_WAIT_SECONDS
        deadline = time.monotonic() + budget
        if first:
            workers = set(range(self.engine.settings.workers)) | {exchange.index}
            while {s.index for s in await asyncio.to_thread(exchange.workers)} < workers:
                if time.monotonic() >= deadline:
                    break  # once only: a worker that cannot start must not hold every answer
                await asyncio.sleep(0.05)
        if self._reporting is None or self._reporting.done():
            self._reporting = asyncio.create_task(asyncio.to_thread(self.monitor.refresh))
            self._reporting.add_done_callback(_logged)
        await asyncio.wait({self._reporting}, timeout=max(deadline - time.monotonic(), 0.0))

    def read(self) -> dict[str, Any]:
        """Everything the dashboard draws (``read_json`` is what the API answers)."""
        head, listed, traffic = self._gathered()
        return {**head, "models": self._models(listed, traffic)}

    def read_json(self, answered: Mapping[tuple[str, str], int]) -> bytes:
        """``read`` as JSON, each version's entry made once per report
        (``SerialisedEntries``), with the requests each version ``answered`` (``answered``).
        Call it off the event loop: it reads the monitor's reports (which may wait for its
        lock) and the machine's figures, and serialises the lot."""
        head, listed, traffic = self._gathered()
        share = self.engine.settings.drift_dataset_share
        rate = self.monitor.call_sample_rate
        models = joined(
            self._serialised.entry(
                report,
                rate,
                answered.get((report.model, report.version), 0),
                serving,
                share,
                traffic.get(f"{report.model}:{report.version}"),
            )
            for report, serving in listed
        )
        self._serialised.forget((r.model, r.version) for r, _ in listed)
        return dumps(head)[:-1] + b',"models":' + models + b"}"

    def entries(
        self,
        reports: Iterable[ModelReport],
        traffic: Mapping[str, VersionTraffic] | None = None,
    ) -> list[dict[str, Any]]:
        """``reports`` as ``model_overview`` shows them; with the monitor sampling, each with
        the requests its version answered (read once for all of them; the statistics of
        every worker, as ``/metrics`` counts them, only then); each with its ``traffic``
        (``Monitor.traffic``, read here if not given)."""
        rate = self.monitor.call_sample_rate
        traffic = self.monitor.traffic() if traffic is None else traffic
        sampled = rate < 1 and self.statistics is not None
        answered = self.answered() if sampled else None
        return [
            model_overview(
                r,
                rate,
                answered.get((r.model, r.version), 0) if answered is not None else None,
                traffic.get(f"{r.model}:{r.version}"),
            )
            for r in reports
        ]

    def entries_json(
        self,
        reports: Iterable[ModelReport],
        answered: Mapping[tuple[str, str], int],
        traffic: Mapping[str, VersionTraffic],
    ) -> bytes:
        """``entries`` as JSON, each made once per report (``SerialisedEntries``), with the
        requests each version ``answered`` (``answered``) and its ``traffic``; off the event
        loop."""
        rate = self.monitor.call_sample_rate
        return joined(
            self._serialised.entry(
                r,
                rate,
                answered.get((r.model, r.version), 0),
                traffic=traffic.get(f"{r.model}:{r.version}"),
            )
            for r in reports
        )

    def entry_json(
        self, report: ModelReport, serving: bool, answered: Mapping[tuple[str, str], int]
    ) -> bytes:
        """``report``'s entry as JSON (``entries_json``), saying whether it is ``serving``."""
        number = answered.get((report.model, report.version), 0)
        traffic = self.monitor.traffic().get(f"{report.model}:{report.version}")
        rate = self.monitor.call_sample_rate
        return self._serialised.entry(report, rate, number, serving, traffic=traffic)

    def answered(self) -> dict[tuple[str, str], int]:
        """The requests each version answered (by model and version), when the monitor
        samples (else none): the entries show them beside the watched ones. Call it on the
        event loop, as ``ProcessMonitoring.statistics`` asks."""
        if self.monitor.call_sample_rate >= 1 or self.statistics is None:
            return {}
        return {(s.name, s.version): s.success.count for s in self.statistics()}

    def _gathered(
        self,
    ) -> tuple[dict[str, Any], list[tuple[ModelReport, bool]], dict[str, VersionTraffic]]:
        """What ``read`` has but the models' entries, the versions to list (``_listed``), and
        their traffic (``Monitor.traffic``)."""
        now = time.time()
        process = psutil.Process()
        with process.oneshot():
            rss = process.memory_info().rss
        supervisor_rss = _family_memory(self.supervisor, self._worker_pids())
        disk = disk_bytes()
        net = psutil.net_io_counters()
        series = self.monitor.series()
        points = [service_point(p) for p in series]
        memory = series[-1].memory_bytes + supervisor_rss if series else None
        last = points[-1] if points else None
        book = self.monitor.alert_state()
        head = {
            "time": now,
            "uptime_seconds": now - self.started_at,
            "series": points,
            "system": {
                "workers": self.engine.settings.workers,
                # The server's, as the chart draws them: its serving and monitoring processes',
                # every worker's added up (see ``ServicePoint``, ``merge_points``); of them,
                # the monitoring processes'. None until the first interval closes. The
                # memory also counts the supervisor's (and its helpers'), in no point: what
                # a container that runs the server must hold.
                "cpu_percent": last["cpu_percent"] if last else None,
                "memory_bytes": memory,
                "supervisor_memory_bytes": supervisor_rss if self.supervisor else None,
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
            "alerts": [a.to_dict() for a in book.active],
            "pending_alerts": book.waiting(self.monitor.rules),
        }
        traffic = self.monitor.traffic()
        return head, self._listed(traffic), traffic

    def _worker_pids(self) -> set[int]:
        """The live workers, whose memory the service history counts."""
        exchange = self.monitor.exchange
        return {s.pid for s in exchange.workers()} if exchange is not None else set()

    def _listed(self, traffic: Mapping[str, VersionTraffic]) -> list[tuple[ModelReport, bool]]:
        """Every version with a report, and each that answered requests of late but has none
        (it failed every one: ``Monitor.unwatched``); then each served version without one,
        with no traffic yet (the monitor reports on a version only once it has answered
        requests); each with whether it is serving (the version a request without a version
        goes to now)."""
        serving = {
            (name, str(version.version))
            for name, version in self.engine.served.current_versions()
            if version is not None and self.engine.served.is_served(name)
        }
        reports = [*self.monitor.reports(), *self.monitor.unwatched(traffic)]
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
        return [(r, (r.model, r.version) in serving) for r in [*reports, *idle]]

    def _models(
        self, listed: list[tuple[ModelReport, bool]], traffic: Mapping[str, VersionTraffic]
    ) -> list[dict[str, Any]]:
        """The entries of the versions ``listed`` (``_listed``).

        One entry per version, each saying whether it is ``serving``: after ``modelpilot
        alias`` moves traffic, the old version's report stays beside the new one's, and the
        page must tell them apart and show the one that serves. Each drift report carries
        ``dataset_share``, the share of drifted features that makes dataset drift, for the
        page to say how far a window is from it (an alert fires on any drifted feature; the
        dataset verdict needs the share).
        """
        share = self.engine.settings.drift_dataset_share
        models = []
        every = [report for report, _ in listed]
        for (_, serving), entry in zip(listed, self.entries(every, traffic), strict=True):
            entry["serving"] = serving
            if entry["drift"] is not None:
                entry["drift"]["dataset_share"] = share
            models.append(entry)
        return models


def _supervisor(engine: InferenceEngine) -> psutil.Process | None:
    """This worker's supervisor: its parent (``serve --workers`` starts every worker)."""
    if engine.settings.worker_dir is None:
        return None
    try:
        return psutil.Process(os.getppid())
    except psutil.Error:
        return None


def _started_at(supervisor: psutil.Process | None, default: float) -> float:
    if supervisor is not None:
        with contextlib.suppress(psutil.Error):
            return float(supervisor.create_time())
    return default


def _family_memory(supervisor: psutil.Process | None, workers: set[int]) -> int:
    """Resident memory of the supervisor and its children but the live ``workers``
    (multiprocessing's resource tracker, and a worker started in place of one that died until
    it publishes), which the workers' figures leave out; 0 without one."""
    if supervisor is None:
        return 0
    total = 0
    with contextlib.suppress(psutil.Error):
        for process in [supervisor, *supervisor.children()]:
            if process.pid not in workers:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
    return total


def _logged(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "reporting with the sibling workers' figures failed", exc_info=task.exception()
        )
