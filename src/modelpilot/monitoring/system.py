"""Machine and process metrics, read when Prometheus scrapes (nothing runs in between)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class SystemCollector(Collector):
    """CPU, memory, disk and network of the machine and this process; GPUs through NVML.

    GPU metrics appear only where ``pynvml`` imports and finds a device; elsewhere they are
    absent, not zero, and nothing is logged.
    """

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception:
            self._nvml = None

    def collect(self) -> Iterator[Any]:
        proc = self.process
        with proc.oneshot():
            times = proc.cpu_times()
            memory = proc.memory_info()
            try:
                open_files = proc.num_fds()
            except (AttributeError, psutil.Error):
                open_files = len(proc.open_files())
        yield _counter(
            "modelpilot_process_cpu_seconds", "CPU time of this process.", times.user + times.system
        )
        yield _gauge(
            "modelpilot_process_resident_memory_bytes",
            "Resident memory of this process.",
            memory.rss,
        )
        yield _gauge(
            "modelpilot_process_open_fds", "Open file descriptors of this process.", open_files
        )
        yield _gauge(
            "modelpilot_system_cpu_utilization_ratio",
            "Share of the machine's CPU in use since the last scrape (0-1).",
            psutil.cpu_percent(None) / 100,
        )
        yield _gauge(
            "modelpilot_system_cpu_count", "Logical CPUs of the machine.", psutil.cpu_count() or 0
        )
        vm = psutil.virtual_memory()
        yield _gauge("modelpilot_system_memory_total_bytes", "Memory of the machine.", vm.total)
        yield _gauge(
            "modelpilot_system_memory_available_bytes", "Memory still available.", vm.available
        )
        disk = psutil.disk_io_counters()
        if disk is not None:
            yield _counter(
                "modelpilot_system_disk_read_bytes", "Bytes read from disks.", disk.read_bytes
            )
            yield _counter(
                "modelpilot_system_disk_written_bytes", "Bytes written to disks.", disk.write_bytes
            )
        net = psutil.net_io_counters()
        if net is not None:
            yield _counter(
                "modelpilot_system_network_received_bytes", "Bytes received.", net.bytes_recv
            )
            yield _counter("modelpilot_system_network_sent_bytes", "Bytes sent.", net.bytes_sent)
        if self._nvml is not None:
            yield from self._gpus()

    def _gpus(self) -> Iterator[Any]:
        nvml = self._nvml
        utilization = GaugeMetricFamily(
            "modelpilot_gpu_utilization_ratio", "GPU busy share (0-1).", labels=["gpu"]
        )
        used = GaugeMetricFamily(
            "modelpilot_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"]
        )
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                utilization.add_metric([str(index)], rates.gpu / 100)
                used.add_metric([str(index)], nvml.nvmlDeviceGetMemoryInfo(handle).used)
        except Exception as exc:
            logger.debug("NVML read failed: %s", exc)
            return
        yield utilization
        yield used


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
