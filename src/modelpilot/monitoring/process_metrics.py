"""One process's monitoring: a fresh registry with service, engine and system metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from modelpilot.monitoring.service import EngineCollector, ServiceMetrics
from modelpilot.monitoring.system import SystemCollector
from modelpilot.serving.engine import InferenceEngine


@dataclass
class ProcessMetrics:
    registry: CollectorRegistry
    service: ServiceMetrics

    @classmethod
    def for_engine(cls, engine: InferenceEngine) -> ProcessMetrics:
        """Metrics for ``engine`` on a registry of their own; the engine reports to them."""
        registry = CollectorRegistry(auto_describe=True)
        service = ServiceMetrics(registry)
        registry.register(EngineCollector(engine))
        registry.register(SystemCollector())
        engine.observers.append(service)
        return cls(registry, service)
