"""The service history's CPU and memory are the server's: its serving process's and its
monitoring process's, and say which part is monitoring's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from modelpilot.monitoring.history import ServiceHistory, ServicePoint, merge_points

HELPER = (
    "import sys, time\n"
    "held = bytearray(64 * 1024 * 1024)\n"  # resident: every page written
    "for i in range(0, len(held), 4096): held[i] = 1\n"
    "end = time.process_time() + 0.3\n"
    "while time.process_time() < end: pass\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)
"""A stand-in for the monitoring process: 64 MiB resident and 0.3 s of CPU, then idle."""


@pytest.fixture
def helper() -> Iterator[psutil.Process]:
    with subprocess.Popen(
        [sys.executable, "-c", HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        try:
            yield psutil.Process(process.pid)
        finally:
            process.kill()


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_a_point_counts_the_monitoring_process_in_the_servers_cpu_and_memory(
    helper: psutil.Process,
) -> None:
    """t6's case: the dashboard's memory was the serving process's alone, 287 MB of a server
    using 461 MB (its monitoring process 158 MB); a container sized by it ran short."""
    history = ServiceHistory(monitor_pid=lambda: helper.pid)
    point = history.close_interval()
    helper_memory = helper.memory_info().rss
    own_memory = psutil.Process().memory_info().rss
    assert helper_memory > 64 * 1024 * 1024
    assert point.monitor_memory_bytes == pytest.approx(helper_memory, rel=0.02)
    assert point.memory_bytes == pytest.approx(own_memory + helper_memory, rel=0.05)
    # Idle now: all its CPU so far fell in this first interval, in percent of one core.
    used = point.monitor_cpu_percent / 100 * point.seconds
    assert used == pytest.approx(cpu_seconds(helper), abs=0.02)
    assert used >= 0.25
    assert point.cpu_percent >= point.monitor_cpu_percent
    later = history.close_interval()  # idle since: next to nothing
    assert later.monitor_cpu_percent / 100 * later.seconds < 0.02
    data = later.to_dict()
    assert data["memory_bytes"] == later.memory_bytes
    assert data["monitor_memory_bytes"] == later.monitor_memory_bytes
    assert data["monitor_cpu_percent"] == later.monitor_cpu_percent


def test_without_a_monitoring_process_the_figures_are_the_serving_processs() -> None:
    """``MODELPILOT_MONITOR_PROCESS=false``: monitoring runs on threads of the serving process,
    whose figures hold it already."""
    point = ServiceHistory(monitor_pid=lambda: None).close_interval()
    assert point.monitor_cpu_percent == 0 and point.monitor_memory_bytes == 0
    assert point.memory_bytes == pytest.approx(psutil.Process().memory_info().rss, rel=0.05)


def test_workers_add_up_their_monitoring_processes_too() -> None:
    def point(t: float, memory: int, monitor: int) -> ServicePoint:
        return ServicePoint(
            t,
            2.0,
            1,
            0,
            0.001,
            0.001,
            0.001,
            30.0,
            memory,
            monitor_cpu_percent=10.0,
            monitor_memory_bytes=monitor,
        )

    own = [point(2.0, 300, 100), point(3.6, 310, 110), point(4.1, 320, 120)]
    sibling = [point(2.1, 200, 50), point(4.0, 210, 60)]
    merged = merge_points(own, [sibling], interval=2.0)
    assert [(p.memory_bytes, p.monitor_memory_bytes) for p in merged] == [(500, 150), (530, 180)]
    assert [p.monitor_cpu_percent for p in merged] == [20.0, 20.0]
