"""One server process's monitoring: its metrics registry, and the monitor when it is on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from modelpilot.config import Settings
from modelpilot.monitoring.alert_book_store import book_store, server_name
from modelpilot.monitoring.alerts import AlertRules
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.engine_metrics import EngineCollector
from modelpilot.monitoring.inference_log import advise, open_log
from modelpilot.monitoring.looks import window_looks
from modelpilot.monitoring.model_metrics import ModelCollector, MonitorCollector
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.performance import PerformanceThresholds
from modelpilot.monitoring.service import ServiceMetrics
from modelpilot.monitoring.siblings import SiblingCollector, WorkerExchange, prometheus_dir
from modelpilot.monitoring.statistics import VersionStatistics, version_statistics
from modelpilot.monitoring.system import SystemCollector
from modelpilot.monitoring.tap import LocalTap, Tap
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.monitoring.window_parts import WINDOW_PARTS
from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger(__name__)


def drift_thresholds(settings: Settings) -> DriftThresholds:
    return DriftThresholds(
        min_rows=settings.drift_min_rows,
        large_sample_rows=settings.drift_large_sample_rows,
        p_value=settings.drift_p_value,
        psi=settings.drift_psi_threshold,
        js_distance=settings.drift_js_threshold,
        dataset_share=settings.drift_dataset_share,
    )


def alert_rules(settings: Settings) -> AlertRules:
    return AlertRules(
        error_rate=settings.alert_error_rate,
        min_requests=settings.alert_min_requests,
        model_min_requests=settings.alert_model_min_requests,
        latency_p99_seconds=settings.alert_latency_p99_seconds,
        for_seconds=settings.alert_for_seconds,
        keep_firing_seconds=settings.alert_keep_firing_seconds,
        loss_for_seconds=settings.alert_monitoring_loss_for_seconds,
    )


def monitor_config(settings: Settings) -> MonitorConfig:
    """Monitoring's windows and thresholds for one server process.

    The workers of ``serve --workers N`` share the drift window (which the prediction
    window is too): each keeps up to ``drift_window_rows`` of its own traffic and tells it in
    parts, and the window merged over them holds the newest ``drift_window_rows``, whichever
    worker took them (``window_parts``): a fixed share a worker held half the rows where one
    worker took most of the traffic. The labelled window, pooled over the workers, keeps its
    newest ``performance_window_rows`` the same way.
    """
    # Judged every round as it fills and slides, a window spends its level over the looks it
    # gets (``modelpilot drift`` judges once, at the level itself).
    looks = window_looks(settings.drift_min_rows, settings.drift_window_rows)
    return MonitorConfig(
        window_rows=settings.drift_window_rows,
        window_seconds=settings.drift_window_seconds,
        drift=replace(drift_thresholds(settings), looks=looks),
        performance_rows=settings.performance_window_rows,
        performance_seconds=settings.performance_window_seconds,
        performance=PerformanceThresholds(
            min_labels=settings.performance_min_labels,
            max_drop=settings.performance_max_drop,
            max_error_increase=settings.performance_max_error_increase,
            label_shift=settings.performance_label_shift,
        ),
        window_parts=WINDOW_PARTS if settings.worker_dir is not None else 0,
    )


def labels_apart(settings: Settings) -> str | None:
    """Why a label may join on one worker of the server and be refused on another (None
    when it cannot be): the workers share the inference log alone, and a request that the
    log leaves out (sampled, or off) is kept for labels only in the memory of the worker
    that answered it. Asking the other workers would take a channel between them that a
    load balancer's replicas, sharing only the log, do not have either."""
    if settings.workers < 2:
        return None
    if not settings.inference_log:
        left_out = "the inference log is off (MODELPILOT_INFERENCE_LOG=false), so every request"
    elif settings.inference_log_sample_rate < 1:
        left_out = (
            f"the inference log keeps {settings.inference_log_sample_rate:.0%} of requests "
            "(MODELPILOT_INFERENCE_LOG_SAMPLE_RATE), and a request it leaves out"
        )
    else:
        return None
    return (
        f"{left_out} takes labels only at the worker that answered it, one of "
        f"{settings.workers}: a label for it posted to another worker is refused as unknown. "
        "Log every request to have any worker take its label (and set "
        "MODELPILOT_MONITOR_SAMPLE_RATE to watch fewer, the same ones on every worker)"
    )


def _monitor(
    engine: InferenceEngine, settings: Settings, exchange: WorkerExchange | None
) -> Monitor:
    config = monitor_config(settings)
    apart = labels_apart(settings)
    if apart is not None and exchange is not None and exchange.index == 0:
        logger.warning("labels: %s", apart)
    starting = _starting(exchange)
    restore = _restores(settings, exchange, starting)
    labels = _restores_labels(settings, exchange, starting)
    refs = _served_now(engine)
    tap: Tap
    if settings.monitor_process:
        if settings.inference_log:
            # Here, before the server says it serves: the monitoring process opens the log
            # only once it has started, which on a loaded machine took many seconds.
            advise(engine.registry)
        spec = TapSpec(
            engine.registry.address(),
            config,
            settings.inference_log,
            settings.inference_log_max_rows,
            settings.inference_log_sample_rate,
            # Labels of the requests a sampled (or no) log leaves out join in memory, for as
            # many requests as the log holds: a fixed 100,000 refused 70% of late labels at
            # a sample rate of 0.3, whatever the log's bound said.
            join_capacity=settings.inference_log_max_rows,
            restore=restore,
            restore_refs=refs,
            restore_after_crash=restore and exchange is None,
            advised=settings.inference_log,
        )
        tap = TapProcess(spec)
    else:
        log = None
        if settings.inference_log:
            log = open_log(
                engine.registry.companion_engine("inference-log"), settings.inference_log_max_rows
            )
        tap = LocalTap(
            engine.registry,
            config,
            log,
            settings.inference_log_sample_rate,
            join_capacity=settings.inference_log_max_rows,
            restore=restore,
            refs=refs,
            log_missing=settings.inference_log,
        )
        if settings.inference_log and log is None:
            tap.count_failure()
    # Each server keeps its own alert book, by its name, else by machine and port (with
    # workers, the port the supervisor picked): servers sharing a registry judge their own
    # traffic.
    server = settings.server_name or server_name(settings.http_port)
    return Monitor(
        engine.registry,
        config,
        alert_rules(settings),
        webhook_url=settings.alert_webhook_url,
        evaluate_seconds=settings.monitor_interval_seconds,
        round_seconds=settings.monitor_round_seconds,
        exchange=exchange,
        tap=tap,
        call_sample_rate=settings.monitor_sample_rate,
        restore=labels,
        restore_refs=refs,
        restoring=restore or labels or (_logged(settings) and starting),
        alert_store=book_store(engine.registry, server),
        resume_alerts=settings.monitor_restore,
        alert_server=server,
        webhook_timeout=settings.alert_webhook_timeout_seconds,
    )


def _served_now(engine: InferenceEngine) -> tuple[str, ...] | None:
    """The versions requests reach now (the engine has started), as ``NAME:VERSION``: what
    the windows and labels are restored for. Not the references served, which resolve to
    where an alias points: a server started while its alias pointed at a version that does
    not load serves the version before, and restored the windows of the one that never
    served (none), so the version taking the traffic lost its window and its firing alert."""
    served = engine.served
    now = tuple(
        f"{name}:{version.version}" if version is not None else name
        for name, version in served.current_versions()
    )
    return None if served.serve_all and not now else now  # None: every model's


def _restores(settings: Settings, exchange: WorkerExchange | None, starting: bool) -> bool:
    """Whether this process's drift and prediction windows start from the inference log:
    always when it serves alone; with workers, only in worker 0 of a server that is starting.

    Not in a worker that replaces one that died: the log does not say which worker answered
    a request, and the siblings' windows hold theirs, which would count twice. The dead
    worker's rows are lost with it: the merged window takes the siblings' older rows in their
    place (each keeps up to the whole window), and refills with traffic (a drift alert
    meanwhile holds while the merged window is too small to judge); its labels come back
    (``_restores_labels``)."""
    if not _logged(settings):
        return False
    return exchange is None or (exchange.index == 0 and starting)


def _restores_labels(settings: Settings, exchange: WorkerExchange | None, starting: bool) -> bool:
    """Whether this process's quality windows start with the labels the inference log holds:
    always when it serves alone; with workers, in worker 0 and in a worker that replaces one
    that died. A worker 0 killed took the labels of days with it, which its replacement did
    not read again: one crash lost what a restart keeps. Labelled rows pool over the workers
    by request and row, so labels a sibling holds too count once."""
    if not _logged(settings):
        return False
    return exchange is None or exchange.index == 0 or not starting


def _logged(settings: Settings) -> bool:
    """Whether monitoring starts from the inference log (``MODELPILOT_MONITOR_RESTORE``)."""
    return settings.monitor_restore and settings.inference_log


def _starting(exchange: WorkerExchange | None) -> bool:
    """Whether this process is a worker that starts with its server, not one started in
    place of a worker that died: no worker of its index has started before in this server
    (each leaves a mark, ``worker-N.started``, as it asks) and none of its index left a
    snapshot behind. Asked once per process. (Whether any sibling had published a snapshot
    told it before, but a sibling scraped early publishes one before its first round, and
    worker 0 then skipped its restore.)"""
    if exchange is None:
        return False
    mark = exchange.directory / f"worker-{exchange.index}.started"
    replaces = mark.exists() or any(exchange.directory.glob(f"retired-{exchange.index}-*"))
    mark.touch()
    return not replaces


@dataclass
class ProcessMonitoring:
    registry: CollectorRegistry
    """What ``GET /metrics`` shows."""
    service: ServiceMetrics
    monitor: Monitor | None
    """Model monitoring, alerts and the inference log; None when ``settings.monitoring`` is off."""
    exchange: WorkerExchange | None = None
    interval: float = 2.0
    shared: MultiProcessCollector | None = None
    """With worker processes: every worker's counters and histograms, summed."""
    _publisher: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def for_engine(
        cls, engine: InferenceEngine, settings: Settings | None = None
    ) -> ProcessMonitoring:
        """Metrics (and, if on, a monitor) for ``engine``; the engine reports to them.

        With ``settings.worker_dir`` (``serve --workers``) the metrics and the monitoring
        windows of every worker are merged, whichever worker is asked (see ``siblings``).
        """
        settings = settings or engine.settings
        local = CollectorRegistry(auto_describe=True)
        exchange = shared = None
        if settings.worker_dir is not None:
            exchange = WorkerExchange(settings.worker_dir, settings.worker_index, local)
            service = ServiceMetrics(CollectorRegistry(), process_registry=local)
            scrape = CollectorRegistry()
            service.flush_when_read(scrape)  # this worker's counts into the shared files first
            shared = MultiProcessCollector(scrape, path=str(prometheus_dir(settings.worker_dir)))  # type: ignore[no-untyped-call]
            scrape.register(SiblingCollector(exchange))
        else:
            scrape = local
            service = ServiceMetrics(local)
        local.register(EngineCollector(engine))
        local.register(SystemCollector())
        service.watch(engine)
        monitor = None
        if settings.monitoring:
            monitor = _monitor(engine, settings, exchange)
            scrape.register(ModelCollector(monitor))
            local.register(MonitorCollector(monitor))  # per worker, as its work is
            monitor.watch(engine)
        elif exchange is not None:
            exchange.inherit()  # no monitoring totals to carry on: the per-worker counters
        return cls(scrape, service, monitor, exchange, settings.monitor_interval_seconds, shared)

    def statistics(self, served: Iterable[tuple[str, str]] = ()) -> list[VersionStatistics]:
        """Each version's statistics (Triton's extension), over every worker; call it on the
        thread that serves, as it flushes this process's counts."""
        if self.shared is None:
            return version_statistics(self.service.families(), served)
        self.service.flush()
        return version_statistics(self.shared.collect(), served)  # type: ignore[no-untyped-call]

    def start(self) -> None:
        if self.monitor is not None:
            self.monitor.start()  # it publishes this worker's snapshot every round
        elif self.exchange is not None:
            self._publisher = threading.Thread(
                target=self._publish, name="modelpilot-metrics-publisher", daemon=True
            )
            self._publisher.start()

    def _publish(self) -> None:
        assert self.exchange is not None
        while not self._stopping.wait(self.interval):
            try:
                self.exchange.publish()
            except OSError:
                logger.exception("could not publish this worker's metrics snapshot")

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        self._stopping.set()
        if self._publisher is not None:
            self._publisher.join(timeout=10)
        if self.exchange is not None:
            self.exchange.retire()
