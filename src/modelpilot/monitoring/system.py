"""Machine and process metrics, read when Prometheus scrapes (nothing runs in between)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

SYS_BLOCK = Path("/sys/block")
"""Linux's block devices: whole disks and virtual devices, no partitions."""


class MachineCpu:
    """The share of the machine's CPU in use, measured by one reader between its own readings.

    Not ``psutil.cpu_percent(None)``: that measures since the last call by anyone in the
    process, so two readers close together (a scrape right after the dashboard's poll) shrink
    its interval to milliseconds and its figure to noise, 0 or 100 %. Each reader keeps an
    instance of its own; a reading less than ``min_seconds`` after the last one returns the
    last figure again, and the first ones the machine's average since it booted.
    """

    def __init__(
        self,
        min_seconds: float = 1.0,
        read: Callable[[], NamedTuple] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_seconds = min_seconds
        self._read = read or psutil.cpu_times
        self._clock = clock
        self._lock = threading.Lock()
        self._busy, self._total = _busy_and_total(self._read())
        self._at = clock()
        self._share = self._busy / self._total if self._total > 0 else 0.0

    def share(self) -> float:
        """The busy share (0-1) since this reader's previous measurement."""
        with self._lock:
            now = self._clock()
            if now - self._at < self.min_seconds:
                return self._share
            busy, total = _busy_and_total(self._read())
            if total > self._total:
                self._share = min(max((busy - self._busy) / (total - self._total), 0.0), 1.0)
            self._busy, self._total, self._at = busy, total, now
            return self._share


class ChildUsage:
    """CPU seconds and resident memory of a helper process that may be replaced (the
    monitoring process, started again after it dies): the CPU seconds carry on over
    replacements, so that they make a counter that never goes back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._process: psutil.Process | None = None
        self._last = 0.0
        """The current process's CPU seconds when last read."""
        self._before = 0.0
        """The CPU seconds of the processes before it."""

    def read(self, pid: int | None) -> tuple[float, int] | None:
        """(CPU seconds of every process that was ``pid`` so far, ``pid``'s resident bytes),
        or None if there has never been one to read."""
        with self._lock:
            if pid is not None and pid != self._pid:
                self._before += self._last
                self._last = 0.0
                self._pid = pid
                try:
                    self._process = psutil.Process(pid)
                except psutil.Error:
                    self._process = None
            if self._pid is None:
                return None
            rss = 0
            if self._process is not None:
                try:
                    with self._process.oneshot():
                        times = self._process.cpu_times()
                        rss = self._process.memory_info().rss
                    self._last = times.user + times.system
                except psutil.Error:  # gone; its last reading stands
                    self._process = None
            return self._before + self._last, rss


def physical_disks(sys_block: Path = SYS_BLOCK) -> set[str]:
    """The block devices of ``sys_block`` with a device behind them (a ``device`` link), by
    their names in ``/proc/diskstats``: the physical disks, whose bytes added up count each
    byte read or written once.

    Left out are the virtual devices, whose bytes a disk counts again: on LVM (or LUKS) every
    byte goes through a ``dm-*`` device and then a disk, on software RAID through ``md*`` and
    a member disk, through a ``loop`` device and the disk its file is on; and ``zram*`` and
    ``ram*`` are memory. Summed with them, as ``psutil.disk_io_counters()`` sums every block
    device, a server on LVM counted each byte twice (three times with LUKS on LVM).
    """
    try:
        devices = list(sys_block.iterdir())
    except OSError:
        return set()
    # sysfs spells a "/" in a device's name (cciss/c0d0) "!".
    return {device.name.replace("!", "/") for device in devices if (device / "device").exists()}


def disk_bytes(sys_block: Path = SYS_BLOCK) -> tuple[int, int] | None:
    """Bytes read from and written to the machine's physical disks since it booted (see
    ``physical_disks``); None where none is found or the system tells no disk I/O.

    Where there is no ``sys_block`` (not Linux), the system's own total."""
    if not sys_block.is_dir():
        total = psutil.disk_io_counters()
        return None if total is None else (total.read_bytes, total.write_bytes)
    disks = physical_disks(sys_block)
    counted = [
        io for name, io in (psutil.disk_io_counters(perdisk=True) or {}).items() if name in disks
    ]
    if not counted:
        return None
    return sum(io.read_bytes for io in counted), sum(io.write_bytes for io in counted)


def _busy_and_total(times: NamedTuple) -> tuple[float, float]:
    """CPU seconds spent busy, and in all, as ``psutil.cpu_percent`` counts them."""
    values = times._asdict()
    # Linux counts guest time in user and nice already.
    total = sum(values.values()) - values.get("guest", 0.0) - values.get("guest_nice", 0.0)
    return total - values.get("idle", 0.0) - values.get("iowait", 0.0), total


class SystemCollector(Collector):
    """CPU, memory, disk and network of the machine and this process; GPUs through NVML.

    GPU metrics appear only where ``pynvml`` imports and finds a device; elsewhere they are
    absent, not zero, and nothing is logged.
    """

    def __init__(self, cpu: MachineCpu | None = None) -> None:
        self.process = psutil.Process()
        self.cpu = cpu or MachineCpu()
        """The collector's own reader of the machine's CPU (whatever else reads it)."""
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
            "modelpilot_process_cpu_seconds",
            "CPU time of this (serving) process; its monitoring process's is apart.",
            times.user + times.system,
        )
        yield _gauge(
            "modelpilot_process_resident_memory_bytes",
            "Resident memory of this (serving) process.",
            memory.rss,
        )
        yield _gauge(
            "modelpilot_process_open_fds", "Open file descriptors of this process.", open_files
        )
        yield _gauge(
            "modelpilot_system_cpu_utilization_ratio",
            "Share of the machine's CPU in use since the last scrape, a second ago at least (0-1).",
            self.cpu.share(),
        )
        yield _gauge(
            "modelpilot_system_cpus", "Logical CPUs of the machine.", psutil.cpu_count() or 0
        )
        vm = psutil.virtual_memory()
        yield _gauge("modelpilot_system_memory_total_bytes", "Memory of the machine.", vm.total)
        yield _gauge(
            "modelpilot_system_memory_available_bytes", "Memory still available.", vm.available
        )
        disk = disk_bytes()
        if disk is not None:
            yield _counter(
                "modelpilot_system_disk_read_bytes",
                "Bytes read from the machine's physical disks (not from virtual block devices: "
                "device-mapper, RAID, loop, zram; their bytes are the disks' again).",
                disk[0],
            )
            yield _counter(
                "modelpilot_system_disk_written_bytes",
                "Bytes written to the machine's physical disks (not to virtual block devices: "
                "device-mapper, RAID, loop, zram; their bytes are the disks' again).",
                disk[1],
            )
        net = psutil.net_io_counters()
        if net is not None:
            yield _counter(
                "modelpilot_system_network_received_bytes",
                "Bytes the machine's network interfaces received, loopback included.",
                net.bytes_recv,
            )
            yield _counter(
                "modelpilot_system_network_sent_bytes",
                "Bytes the machine's network interfaces sent, loopback included.",
                net.bytes_sent,
            )
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
