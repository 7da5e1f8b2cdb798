"""One server process's monitoring: its metrics registry, and the monitor when it is on."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from modelpilot.config import Settings
from modelpilot.monitoring.alerts import AlertRules
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_metrics import ModelCollector
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.performance import PerformanceThresholds
from modelpilot.monitoring.service import EngineCollector, ServiceMetrics
from modelpilot.monitoring.system import SystemCollector
from modelpilot.serving.engine import InferenceEngine


def monitor_config(settings: Settings) -> MonitorConfig:
    return MonitorConfig(
        window_rows=settings.drift_window_rows,
        window_seconds=settings.drift_window_seconds,
        drift=DriftThresholds(
            min_rows=settings.drift_min_rows,
            large_sample_rows=settings.drift_large_sample_rows,
            p_value=settings.drift_p_value,
            psi=settings.drift_psi_threshold,
            js_distance=settings.drift_js_threshold,
            dataset_share=settings.drift_dataset_share,
        ),
        performance_rows=settings.performance_window_rows,
        performance=PerformanceThresholds(
            min_labels=settings.performance_min_labels,
            max_drop=settings.performance_max_drop,
        ),
    )


@dataclass
class ProcessMonitoring:
    registry: CollectorRegistry
    """What ``GET /metrics`` shows."""
    service: ServiceMetrics
    monitor: Monitor | None
    """Model monitoring, alerts and the inference log; None when ``settings.monitoring`` is off."""

    @classmethod
    def for_engine(
        cls, engine: InferenceEngine, settings: Settings | None = None
    ) -> ProcessMonitoring:
        """Metrics (and, if on, a monitor) for ``engine``; the engine reports to them."""
        settings = settings or engine.settings
        registry = CollectorRegistry(auto_describe=True)
        service = ServiceMetrics(registry)
        registry.register(EngineCollector(engine))
        registry.register(SystemCollector())
        engine.observers.append(service)
        monitor = None
        if settings.monitoring:
            log = None
            if settings.inference_log:
                log = InferenceLog(
                    engine.registry.companion_engine("inference-log"),
                    settings.inference_log_max_rows,
                )
            monitor = Monitor(
                engine.registry,
                monitor_config(settings),
                AlertRules(
                    error_rate=settings.alert_error_rate,
                    latency_p99_seconds=settings.alert_latency_p99_seconds,
                ),
                log=log,
                sample_rate=settings.inference_log_sample_rate,
                webhook_url=settings.alert_webhook_url,
                evaluate_seconds=settings.monitor_interval_seconds,
            )
            registry.register(ModelCollector(monitor))
            engine.observers.append(monitor)
        return cls(registry, service, monitor)

    def start(self) -> None:
        if self.monitor is not None:
            self.monitor.start()

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
