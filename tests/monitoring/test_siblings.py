"""Workers' snapshots: whichever worker reads them, counters never go back, totals count once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from modelpilot.config import Settings
from modelpilot.monitoring.alerts import Alert, AlertState
from modelpilot.monitoring.monitor_state import totals_of
from modelpilot.monitoring.process import monitor_config
from modelpilot.monitoring.siblings import SiblingCollector, WorkerExchange, retired_snapshot
from modelpilot.monitoring.window_parts import WINDOW_PARTS
from tests.monitoring.conftest import dead_pid, worker_state


class _Ticking(Collector):
    """A counter that has grown every time it is read, as a process's CPU seconds have."""

    def __init__(self) -> None:
        self.value = 0.0

    def collect(self) -> Iterator[CounterMetricFamily]:
        self.value += 1
        yield CounterMetricFamily("ticks", "Reads so far.", value=self.value)


def _exchange(directory: Path, index: int, pid: int) -> tuple[WorkerExchange, _Ticking]:
    local = CollectorRegistry()
    ticking = _Ticking()
    local.register(ticking)
    return WorkerExchange(directory, index, local, pid=pid), ticking


def _ticks(exchange: WorkerExchange) -> dict[str, float]:
    (family,) = [f for f in SiblingCollector(exchange).collect() if f.name == "ticks"]
    return {s.labels["worker"]: s.value for s in family.samples if s.name == "ticks_total"}


def _totals(exchange: WorkerExchange) -> tuple[list[int], int]:
    classes = np.zeros(3, dtype=np.int64)
    labels = 0
    for snapshot in exchange.everyone():
        for state in snapshot.states:
            classes += state.classes
            labels += state.labels_total
    return classes.tolist(), labels


def test_every_worker_exports_every_workers_scrape_time_metrics_from_their_snapshots(
    tmp_path: Path,
) -> None:
    """Worker 1 answered with its live CPU seconds, worker 0 with worker 1's last published:
    scrapes that went to one, then the other, saw the counter go back (2.54 to 2.31)."""
    first, _ = _exchange(tmp_path, 0, os.getpid())
    second, _ = _exchange(tmp_path, 1, os.getppid())
    first.publish()
    second.publish()
    seen = [_ticks(first), _ticks(second), _ticks(first), _ticks(second)]
    assert all(s == seen[0] for s in seen)  # newer live figures did not show up in between
    assert seen[0] == {"0": 1.0, "1": 1.0}
    second.publish()  # the next round's figures, for both to see
    assert _ticks(first) == _ticks(second) == {"0": 1.0, "1": 2.0}


def test_a_dead_workers_totals_count_until_its_successor_carries_them_then_once(
    tmp_path: Path,
) -> None:
    """Its snapshot was dropped the moment it died, and its successor's carried its totals
    only from its first round on: 6000 predictions by class fell to 4220, then to none."""
    reader, _ = _exchange(tmp_path, 1, os.getpid())
    reader.publish([worker_state([1, 2, 0], labels=1)])
    gone = dead_pid()
    dead, _ = _exchange(tmp_path, 0, gone)
    dead.publish([worker_state([10, 20, 0], labels=5)])
    whole = ([11, 22, 0], 6)
    assert _totals(reader) == whole  # killed, not yet set aside by the supervisor
    (tmp_path / f"worker-{gone}.snapshot").replace(retired_snapshot(tmp_path, 0, gone))
    assert _totals(reader) == whole  # set aside, not yet taken over

    successor, _ = _exchange(tmp_path, 0, os.getppid())
    carried = [totals_of(s) for s in successor.inherit()]
    assert _totals(reader) == whole  # taken over, but not yet published as its own
    successor.publish([*carried, worker_state([0, 0, 3])])
    assert _totals(reader) == ([11, 22, 3], 6)
    assert not list(tmp_path.glob("retired-*"))
    assert reader.peers()[0].pid == os.getppid()  # the dead one's windows are gone


def test_a_worker_that_stops_leaves_its_totals_to_the_next_and_each_counts_once(
    tmp_path: Path,
) -> None:
    """A worker stopped on its own deleted its snapshot, and its totals with it."""
    reader, _ = _exchange(tmp_path, 1, os.getpid())
    first_pid, second_pid = dead_pid(), dead_pid()
    first, _ = _exchange(tmp_path, 0, first_pid)
    first.publish([worker_state([5, 0, 0])])
    first.retire()
    assert _totals(reader) == ([5, 0, 0], 0)
    left = retired_snapshot(tmp_path, 0, first_pid)
    leftover = left.read_bytes()
    second, _ = _exchange(tmp_path, 0, second_pid)
    second.publish([*map(totals_of, second.inherit()), worker_state([0, 7, 0])])
    left.write_bytes(leftover)  # as if its removal had failed: second carries it already
    assert _totals(reader) == ([5, 7, 0], 0)
    second.retire()
    assert _totals(reader) == ([5, 7, 0], 0)
    third, _ = _exchange(tmp_path, 0, os.getppid())
    third.publish(list(map(totals_of, third.inherit())))
    assert _totals(reader) == ([5, 7, 0], 0)
    assert not list(tmp_path.glob("retired-*"))


def test_a_successors_per_worker_counters_carry_on_from_its_predecessors(
    tmp_path: Path,
) -> None:
    """A restarted worker's CPU seconds and monitoring counters started again at 0: by
    worker label, modelpilot_process_cpu_seconds_total{worker="1"} went from 6.18 to 2.89."""
    reader, _ = _exchange(tmp_path, 1, os.getpid())
    first_pid = dead_pid()
    first, ticking = _exchange(tmp_path, 0, first_pid)
    ticking.value = 40.0
    first.publish()  # 41 ticks
    first.retire()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        second, _ = _exchange(tmp_path, 0, alive.pid)
        assert second.inherit() == []
        second.publish()  # its own first tick, on top of the 41
        reader.publish()
        assert _ticks(reader) == {"0": 42.0, "1": 1.0}
        second.retire()
    finally:
        alive.kill()
        alive.wait()
    third, _ = _exchange(tmp_path, 0, os.getppid())
    third.inherit()
    third.publish()  # 42 carried (the first's 41 within them, counted once), and 1 of its own
    assert _ticks(reader)["0"] == 43.0


def test_workers_share_the_drift_windows_rows_and_pool_the_labelled_ones(tmp_path: Path) -> None:
    """Each worker kept a whole window and the merge added them: 10,017 rows of a 5000-row
    drift window with two workers. Then each kept a fixed share (2500), and one worker that
    took most of the traffic held half the window. Each keeps a whole window, told in parts,
    and the merge takes the newest parts over them (``test_window_shared``)."""
    alone = monitor_config(Settings(drift_window_rows=5000, performance_window_rows=1000))
    assert (alone.window_rows, alone.performance_rows, alone.window_parts) == (5000, 1000, 0)
    for workers in (2, 3):
        settings = Settings(
            drift_window_rows=5000,
            performance_window_rows=1000,
            workers=workers,
            worker_dir=tmp_path,
        )
        config = monitor_config(settings)
        # Labelled rows pooled over the workers are cut to the newest 1000 already.
        assert (config.window_rows, config.performance_rows) == (5000, 1000)
        assert config.window_parts == WINDOW_PARTS


def test_the_other_workers_read_the_alert_book_anew_only_when_worker_0_wrote_it(
    tmp_path: Path,
) -> None:
    """Every worker but 0 reads the book at each evaluation (every 2 s, and after each label
    post) to answer from it: unpickled every time, a book holding a long history cost each
    of them that much CPU for a book that had not changed."""
    writer, _ = _exchange(tmp_path, 0, os.getpid())
    reader, _ = _exchange(tmp_path, 1, dead_pid())
    assert reader.alerts() is None
    firing = Alert("data_drift", "m:1", "warning", "2 of 4 features drifted", 0.5, 100.0)
    writer.publish_alerts(AlertState(active=(firing,)))
    first = reader.alerts()
    assert first is not None and first.active == (firing,)
    assert reader.alerts() is first  # the same book, not unpickled again

    resolved = replace(firing, resolved_at=130.0)
    writer.publish_alerts(AlertState(history=(resolved,)))
    second = reader.alerts()
    assert second is not None and second is not first
    assert second.active == () and second.history == (resolved,)
