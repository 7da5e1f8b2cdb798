"""An interval's rates are over the time its requests and CPU were counted in, not over the
time between the stamps of two points (tester "zoo": the dashboard's first point after a
start read 7,646 req/s before serving and 6,271-21,604% CPU on two cores)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from modelpilot.monitoring.history import ServiceHistory

BUSY = (
    "import time\n"
    "end = time.process_time() + 0.3\n"
    "while time.process_time() < end: pass\n"
    "print('ready', flush=True)\n"
    "import sys; sys.stdin.read()\n"
)
"""A monitoring process starting up: 0.3 s of CPU on one core, then idle."""


def test_an_interval_lasts_until_it_is_closed_not_until_its_stamp() -> None:
    """The monitor stamps a point with the time it began its evaluation, then asks the
    monitoring process for its windows: at the first evaluation, right after the start, that
    waits for the process to start (1-2 s), while requests come in."""
    history = ServiceHistory(monitor_pid=lambda: None)
    stamp = time.time()
    time.sleep(0.2)  # the wait (not a synchronisation: the interval must last this long)
    for _ in range(100):
        history.request_finished("m", "1", "rest", "ok", 0.001, None)
    point = history.close_interval(now=stamp)
    assert point.t == stamp
    assert point.seconds >= 0.2
    assert point.requests == 100
    assert point.to_dict()["rps"] <= 500  # 100 requests in at least 0.2 s


def test_the_first_interval_charges_the_monitoring_processs_start_up_over_its_length() -> None:
    started: list[int] = []
    history = ServiceHistory(monitor_pid=lambda: started[0] if started else None)
    stamp = time.time()
    with subprocess.Popen(
        [sys.executable, "-c", BUSY], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as process:
        try:
            started.append(process.pid)
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
            point = history.close_interval(now=stamp)
            times = psutil.Process(process.pid).cpu_times()
        finally:
            process.kill()
    used = point.monitor_cpu_percent / 100 * point.seconds
    assert 0.25 <= used <= times.user + times.system + 1e-9
    # One process on one core: at most 100% of it over the interval (5% for the clock
    # ticks CPU time is counted in), where the stamps' 1 ms read 120,000%.
    assert point.monitor_cpu_percent <= 105
