"""``serve --workers``: a restarted worker's figures, as every worker's scrapes show them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelpilot.monitoring.monitor_state import totals_of
from modelpilot.monitoring.siblings import SiblingCollector, WorkerExchange, retired_snapshot
from tests.monitoring.conftest import dead_pid, worker_state

DISK = "modelpilot_system_disk_read_bytes"
NETWORK = "modelpilot_system_network_received_bytes"
CPU = "modelpilot_process_cpu_seconds"
UPTIME = "modelpilot_uptime_seconds"


class Figures(Collector):
    """A worker's scrape-time figures, as the test sets them."""

    def __init__(self, counters: dict[str, float], gauges: dict[str, float]) -> None:
        self.counters = counters
        self.gauges = gauges

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        for name, value in self.counters.items():
            yield CounterMetricFamily(name, "A counter.", value=value)
        for name, value in self.gauges.items():
            yield GaugeMetricFamily(name, "A gauge.", value=value)


def worker(directory: Path, index: int, pid: int, **counters: float) -> WorkerExchange:
    local = CollectorRegistry()
    local.register(Figures({f"modelpilot_{k}": v for k, v in counters.items()}, {UPTIME: 1.0}))
    return WorkerExchange(directory, index, local, pid=pid)


def scraped(exchange: WorkerExchange) -> dict[tuple[str, str], float]:
    """What a scrape answered by ``exchange``'s worker shows: (sample, worker) -> value."""
    return {
        (sample.name, sample.labels["worker"]): sample.value
        for family in SiblingCollector(exchange).collect()
        for sample in family.samples
    }


def labels(exchange: WorkerExchange) -> int:
    return sum(s.labels_total for snapshot in exchange.everyone() for s in snapshot.states)


def test_a_restarted_workers_machine_counters_are_the_machines_not_its_predecessors_too(
    tmp_path: Path,
) -> None:
    """The successor's disk and network byte counters were the machine's plus every dead
    predecessor's (x2 after one restart, x3 after two): a spike of the machine's lifetime
    I/O in rate() at each restart. Its process CPU seconds carry on, as before."""
    reader = worker(tmp_path, 1, os.getpid(), system_disk_read_bytes=1000.0)
    first_pid = dead_pid()
    first = worker(
        tmp_path, 0, first_pid, system_disk_read_bytes=1000, system_network_received_bytes=50
    )
    first.local.register(Figures({CPU: 5.0}, {}))
    first.publish()
    first.retire()
    # The machine's figures, read again by the worker started in its place.
    successor = worker(
        tmp_path, 0, os.getppid(), system_disk_read_bytes=1200, system_network_received_bytes=60
    )
    successor.local.register(Figures({CPU: 1.0}, {}))
    assert successor.inherit() == []
    successor.publish()
    reader.publish()
    seen = scraped(reader)
    assert seen[(f"{DISK}_total", "0")] == 1200.0
    assert seen[(f"{NETWORK}_total", "0")] == 60.0
    assert seen[(f"{CPU}_total", "0")] == 6.0


def test_a_dead_workers_counters_stand_until_its_successor_publishes_them_carried_on(
    tmp_path: Path,
) -> None:
    """Its per-worker counters vanished from /metrics for the 15 s until its replacement
    published (their series went stale, their sums went back)."""
    reader = worker(tmp_path, 1, os.getpid(), process_cpu_seconds=2.0)
    reader.publish()
    killed_pid = dead_pid()
    killed = worker(tmp_path, 0, killed_pid, process_cpu_seconds=5.0, system_disk_read_bytes=900)
    killed.publish()
    killed_cpu = (f"{CPU}_total", "0")
    assert scraped(reader)[killed_cpu] == 5.0  # killed, not yet set aside by the supervisor
    assert (UPTIME, "0") not in scraped(reader)  # a gauge of a process that no longer runs
    (tmp_path / f"worker-{killed_pid}.snapshot").replace(retired_snapshot(tmp_path, 0, killed_pid))
    assert scraped(reader)[killed_cpu] == 5.0
    successor = worker(tmp_path, 0, os.getppid(), process_cpu_seconds=0.5)
    successor.inherit()
    assert scraped(reader)[killed_cpu] == 5.0  # taken over, not yet published
    successor.publish()
    seen = scraped(reader)
    assert seen[killed_cpu] == 5.5
    assert seen[(UPTIME, "0")] == 1.0
    assert seen[(f"{CPU}_total", "1")] == 2.0


def test_of_two_dead_workers_of_one_index_the_newest_stands_for_both(tmp_path: Path) -> None:
    """A successor killed in its turn carries its predecessor's counters: its figures alone
    stand until a third worker publishes, neither the older one's nor both added."""
    reader = worker(tmp_path, 1, os.getpid())
    first_pid, second_pid = dead_pid(), dead_pid()
    first = worker(tmp_path, 0, first_pid, process_cpu_seconds=5.0)
    first.publish()
    first.retire()
    left = retired_snapshot(tmp_path, 0, first_pid)
    leftover = left.read_bytes()
    second = worker(tmp_path, 0, second_pid, process_cpu_seconds=1.0)
    second.inherit()
    second.publish()
    left.write_bytes(leftover)  # as if its removal had failed: the second's carry it
    (tmp_path / f"worker-{second_pid}.snapshot").replace(retired_snapshot(tmp_path, 0, second_pid))
    assert scraped(reader)[(f"{CPU}_total", "0")] == 6.0


def test_a_worker_before_its_first_round_publishes_the_totals_it_carries_on(
    tmp_path: Path,
) -> None:
    """What a worker publishes before its first monitoring round (as a scrape reads the
    snapshots) stands for its predecessors' totals: they count once, and its first round's
    snapshot is not written over by a scrape after it."""
    reader = worker(tmp_path, 1, os.getpid())
    reader.publish([worker_state([1, 0, 0], 1)])
    killed_pid = dead_pid()
    killed = worker(tmp_path, 0, killed_pid)
    killed.publish([worker_state([5, 0, 0], 5)])
    killed.retire()
    successor = worker(tmp_path, 0, os.getppid())
    carried = [totals_of(s) for s in successor.inherit()]
    scraped(successor)  # a scrape it answered before its first round
    assert labels(reader) == 6
    assert not list(tmp_path.glob("retired-*"))
    successor.publish([*carried, worker_state([2, 0, 0], 2)])  # its first round
    scraped(successor)
    assert labels(reader) == 8
