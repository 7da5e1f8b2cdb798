"""Recent service history: throughput, latency percentiles and errors, one point per interval.

Requests are recorded on the event loop (a list append or two): the history is an observer
of the engine of its own, beside the monitor. The monitor's thread closes an interval every
few seconds and turns it into one point. The dashboard draws the points; the error-rate and
latency alerts read them.
"""

from __future__ import annotations

import math
import sys
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psutil

from modelpilot.monitoring.system import ChildUsage
from modelpilot.serving.observers import InferenceObserver

LATENCY_EDGES = np.geomspace(1e-5, 100.0, 8 * 7 + 1)
"""Bounds of the latency buckets each interval counts its requests in: 10 us to 100 s, eight
to a decade (each 33% wider than the last), so that intervals, and workers, add up to the
percentiles of a whole window within a bucket's width."""

HISTORY_POINTS = 300
"""Intervals a service history keeps: the span of the dashboard's charts (10 minutes at the
default 2 s interval), and of a dead worker's history that its successor carries on."""

LATENCY_BOUND = 0.5
"""The latency each interval counts its slower requests over, by default: the latency alert's
default threshold (``AlertRules.latency_p99_seconds``; the monitor passes the one it judges
by). It falls inside a bucket (0.4217 to 0.5623 s), where a p99 read off the buckets could
land on either side of it: 5 of 305 requests at 510 ms read 460 ms, and raised nothing."""


@dataclass(frozen=True, slots=True)
class ServicePoint:
    t: float
    """When the interval was closed, by the clock of whoever closed it."""
    seconds: float
    """How long the interval lasted, on the history's own clock, from the close that took the
    last interval's requests and CPU to the one that took these: not from ``t`` to ``t``. The
    monitor read its stamp before asking the monitoring process for its windows, which, at
    the first evaluation, waits for that process to start: 1 ms from stamp to stamp, against
    1-2 s of requests and CPU, read 7,646 req/s before serving and 6,000-120,000% CPU on two
    cores."""
    requests: int
    errors: int
    p50: float
    p95: float
    p99: float
    cpu_percent: float
    """CPU the server used over the interval, in percent of one core: the serving process's
    and its monitoring process's (with ``serve --workers``, one worker's until merged)."""
    memory_bytes: int
    """Resident memory of the same processes at the interval's end: what a container that
    runs the server must hold (bar the supervisor of ``--workers``, in no figure)."""
    server_errors: int = 0
    """Of ``errors``, those the server failed (5xx: the model raised, timed out, overloaded);
    the rest were the clients' (4xx: bad input, a model that does not exist)."""
    latency_counts: tuple[int, ...] = ()
    """Requests by latency bucket (``LATENCY_EDGES``; below the first and above the last
    included), for percentiles over several intervals: empty where none were counted."""
    failing: tuple[tuple[str, int], ...] = ()
    """Of ``server_errors``, each model version's (``NAME:VERSION``), most first: the
    error-rate alert is the whole server's, and said only how many failed, not where."""
    monitor_cpu_percent: float = 0.0
    """Of ``cpu_percent``, the monitoring process's (0 where monitoring runs in the serving
    process, ``MODELPILOT_MONITOR_PROCESS=false``, whose CPU is the serving process's)."""
    monitor_memory_bytes: int = 0
    """Of ``memory_bytes``, the monitoring process's."""
    latency_bound: float = 0.0
    """The latency that ``slower`` counts requests over (the latency alert's threshold); 0
    where none was counted."""
    slower: int = 0
    """Requests that took longer than ``latency_bound``: with them the latency alert knows on
    which side of its threshold a p99 is, which the buckets alone do not tell."""
    served: tuple[tuple[str, int], ...] = ()
    """Requests of each model version (``NAME:VERSION``), most first: with ``failing``, each
    version's error rate, which the per-version error-rate rule judges and the model pages
    show (``version_errors``). A model that failed every request had no report, and its page
    said "no traffic yet". Requests refused before a version was chosen count in none."""

    def to_dict(self) -> dict[str, float]:
        per_second = 1.0 / self.seconds if self.seconds > 0 else 0.0
        return {
            "t": self.t,
            "rps": self.requests * per_second,
            "errors_per_s": self.errors * per_second,
            "server_errors_per_s": self.server_errors * per_second,
            "p50_ms": self.p50 * 1000,
            "p95_ms": self.p95 * 1000,
            "p99_ms": self.p99 * 1000,
            "cpu_percent": self.cpu_percent,
            "memory_bytes": self.memory_bytes,
            "monitor_cpu_percent": self.monitor_cpu_percent,
            "monitor_memory_bytes": self.monitor_memory_bytes,
        }


class ServiceHistory(InferenceObserver):
    """The engine's observer that keeps the service history (the monitor reads it)."""

    def __init__(
        self,
        points: int = HISTORY_POINTS,
        monitor_pid: Callable[[], int | None] | None = None,
        latency_bound: float = LATENCY_BOUND,
    ) -> None:
        """``monitor_pid`` tells the pid of the monitoring process (a new one after it was
        replaced), whose CPU and memory each point counts in the server's: without it, the
        dashboard showed some 60% of the memory the server used, and a container sized by
        it would have been too small. ``latency_bound``: each point counts the requests
        slower than it (``ServicePoint.slower``), the latency alert's threshold."""
        self.points: deque[ServicePoint] = deque(maxlen=points)
        # Seconds as C doubles, not a list of float objects: the event loop then holds no
        # object per request until the interval closes, and the percentiles read the array
        # as it is.
        self._durations = array("d")
        self._errors = array("d")
        self._server_errors = array("d")
        self._failing: list[str] = []
        self._served: dict[tuple[str, str], int] = {}
        self._labels: dict[tuple[str, str], str] = {}
        """Each version's ``NAME:VERSION``, made once: the points then share one string a
        version, which the snapshots published to sibling workers pickle once."""
        self._opened = time.monotonic()
        """When the open interval began, on the monotonic clock its length is measured by."""
        self.latency_bound = latency_bound
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only starts the measurement
        self._monitor_pid = monitor_pid
        self._monitor = ChildUsage()
        self._monitor_cpu_seconds = 0.0
        """The monitoring processes' CPU seconds when the last interval closed; 0 before the
        first, as they start with the monitor that this history is part of."""

    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        # An append, no lock: a request recorded while the interval closes may count in the
        # next one; that costs nothing on the event loop, where this runs.
        self._durations.append(seconds)
        if version.isdigit() and status != "404":  # (a version that does not exist: none's)
            served, key = self._served, (model, version)
            served[key] = served.get(key, 0) + 1
        if status != "ok":
            self._errors.append(seconds)
            if status[:1] == "5":
                self._server_errors.append(seconds)
                # (A request failed before a version was chosen has the version "unknown".)
                self._failing.append(f"{model}:{version}" if version.isdigit() else model)

    def close_interval(self, now: float | None = None) -> ServicePoint:
        """End the open interval: its point, stamped ``now`` (default: the time now)."""
        now = time.time() if now is None else now
        # Swapped, not cleared: a request recorded meanwhile lands in one array or the other.
        taken, self._durations = self._durations, array("d")
        errors, self._errors = self._errors, array("d")
        server_errors, self._server_errors = self._server_errors, array("d")
        failing, self._failing = self._failing, []
        served, self._served = self._served, {}
        # The interval ends here, where its requests were taken (its CPU is read just after),
        # whatever the stamp ``now`` says: see ``ServicePoint.seconds``. (Monotonic, too: a
        # wall clock set back made an interval of 1e-9 s.)
        closed = time.monotonic()
        opened, self._opened = self._opened, closed
        durations = np.frombuffer(taken, dtype=np.float64)
        buckets = np.searchsorted(LATENCY_EDGES, durations)
        counts = tuple(np.bincount(buckets, minlength=LATENCY_EDGES.size + 1).tolist())
        if len(durations):
            p50, p95, p99 = (float(x) for x in np.percentile(durations, [50, 95, 99]))
        else:
            p50 = p95 = p99 = 0.0
        seconds = max(closed - opened, 1e-9)
        monitor_cpu, monitor_memory = self._monitoring_process(seconds)
        point = ServicePoint(
            now,
            seconds,
            len(durations),
            len(errors),
            p50,
            p95,
            p99,
            self._process.cpu_percent() + monitor_cpu,
            self._process.memory_info().rss + monitor_memory,
            len(server_errors),
            counts,
            tuple(Counter(failing).most_common()),
            monitor_cpu,
            monitor_memory,
            self.latency_bound,
            int(np.count_nonzero(durations > self.latency_bound)),
            tuple(
                (self._label(key), count)
                for key, count in sorted(served.items(), key=lambda kv: -kv[1])
            ),
        )
        self.points.append(point)
        return point

    def _label(self, key: tuple[str, str]) -> str:
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = sys.intern(f"{key[0]}:{key[1]}")
        return label

    def _monitoring_process(self, seconds: float) -> tuple[float, int]:
        """The monitoring process's CPU (percent of one core) over the last ``seconds``, and
        its resident memory now; zeros where there is none."""
        pid = self._monitor_pid() if self._monitor_pid is not None else None
        read = self._monitor.read(pid)
        if read is None:
            return 0.0, 0
        cpu_seconds, memory = read
        used, self._monitor_cpu_seconds = cpu_seconds - self._monitor_cpu_seconds, cpu_seconds
        return max(used, 0.0) / seconds * 100, memory


def window_quantile(points: Sequence[ServicePoint], q: float, bound: float | None = None) -> float:
    """The ``q`` quantile (0.99 for p99) of the latency of every request in ``points``.

    Not a mean of the intervals' own quantiles: 12 slow requests among 112 are a p99 of
    their latency, whatever the intervals they fell in, where the mean of the intervals'
    p99s, weighted by requests, was a fraction of it. Read off the intervals' buckets, between
    the bounds of the one the quantile falls in (geometrically), and never above the worst
    interval's own quantile, which bounds it; points without buckets count by that mean.

    With ``bound`` (the latency alert's threshold), where every point counted its requests
    slower than it (``ServicePoint.slower``), the bucket that holds ``bound`` is split there:
    the quantile is then above ``bound`` exactly when more than ``1 - q`` of the requests
    took longer, as with a bucket edge at it (Prometheus's rule, on buckets with an edge at
    0.5 s, fired on a p99 of 510-560 ms that the window read as 460-496 ms)."""
    counted = [p for p in points if p.latency_counts and p.requests]
    requests = sum(p.requests for p in points)
    if not requests:
        return 0.0
    if len(counted) < sum(1 for p in points if p.requests):
        weighted = sum(_quantile_of(p, q) * p.requests for p in points) / requests
        return float(weighted)
    counts = np.sum([p.latency_counts for p in counted], axis=0)
    edges = LATENCY_EDGES
    if bound is not None and all(p.latency_bound == bound for p in counted):
        edges, counts = _split_at(bound, sum(p.slower for p in counted), counts)
    else:
        bound = None
    rank = q * int(counts.sum())
    cumulative = np.cumsum(counts)
    bucket = int(np.searchsorted(cumulative, rank))
    before = int(cumulative[bucket - 1]) if bucket else 0
    share = (rank - before) / counts[bucket] if counts[bucket] else 1.0
    low = edges[max(bucket - 1, 0)]
    high = edges[min(bucket, edges.size - 1)]
    estimate = float(low * (high / low) ** min(max(share, 0.0), 1.0))
    capped = min(estimate, max(_quantile_of(p, q) for p in counted))
    if bucket and capped <= low:
        # The counts put the quantile above ``low`` (a bucket holds what is over its lower
        # edge): above ``bound`` where more than 1 - q of the requests took longer. An
        # interval's own quantile, interpolated between its few requests, is no bound then:
        # of 10 requests at 5 ms and 1 at 510 ms the p99 is 460 ms.
        return estimate
    return capped


def _split_at(bound: float, slower: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``LATENCY_EDGES`` with ``bound`` among them, and ``counts`` by those edges: the bucket
    that held ``bound`` split in two by the ``slower`` requests (those over ``bound``)."""
    # LATENCY_EDGES[bucket - 1] < bound <= LATENCY_EDGES[bucket]
    bucket = int(np.searchsorted(LATENCY_EDGES, bound))
    above = slower - int(counts[bucket + 1 :].sum())
    above = min(max(above, 0), int(counts[bucket]))
    split = [int(counts[bucket]) - above, above]
    return (
        np.insert(LATENCY_EDGES, bucket, bound),
        np.concatenate([counts[:bucket], split, counts[bucket + 1 :]]),
    )


def slower_than(points: Sequence[ServicePoint], bound: float) -> int | None:
    """How many requests of ``points`` took longer than ``bound``: None unless every point
    with requests counted them (``ServicePoint.slower``) over that very bound."""
    busy = [p for p in points if p.requests]
    if any(p.latency_bound != bound for p in busy):
        return None
    return sum(p.slower for p in busy)


def _quantile_of(point: ServicePoint, q: float) -> float:
    """The interval's own quantile nearest ``q`` of the three it keeps."""
    return point.p50 if q <= 0.5 else point.p95 if q <= 0.95 else point.p99


def merge_points(
    own: list[ServicePoint],
    others: Sequence[Sequence[ServicePoint]],
    interval: float,
    ended: Sequence[Sequence[ServicePoint]] = (),
) -> list[ServicePoint]:
    """Several processes' histories (``others``: one per sibling) as one: points in the same
    interval are combined.

    Requests, errors, CPU and memory add up; for latency percentiles the worst process's
    stands for the whole (percentiles do not add, and the worst is what an alert wants).
    Intervals that some process has not published yet are left out: summed without it, the
    newest point would show a fraction of the requests, CPU and memory.

    ``ended``: the histories of workers that died, up to their last point, which count in
    every interval they cover but hold back none (they will publish no more). Left out, a
    worker's death rewrote the past: every interval of the last 10 minutes lost the requests
    and CPU that worker had served (a third, of three), and the error-rate alert the failures
    it had answered in its last minute.

    A point counts in the interval of the grid (``interval`` apart, from the epoch) that it
    covers (``grid_slot``): the workers close theirs just after the grid's marks
    (``next_due``), each a little later than the mark as its round takes. Rounded to the
    nearest mark instead, with each worker closing on a clock of its own, one worker's
    interval fell in the bucket after the other's for the same seconds, and a minute's
    window, as the traffic aged out of it, held one worker's last interval without the
    other's: the worker that carried a failing model's requests, alone, fired the error rate
    (3 of 43, 7%, against 2.4% of the server's requests).
    """
    others = [series for series in others if series]
    ended = [series for series in ended if series]
    if not others and not ended:
        return own
    histories = [own, *others] if own else others
    running = histories or ended  # (none running yet: the dead ones' points are all there is)
    last = min(grid_slot(series[-1].t, interval) for series in running)
    buckets: dict[int, list[ServicePoint]] = {}
    for series in [*histories, *ended]:
        # One process may have closed two intervals within one (a flush closes one early,
        # and each thread keeps its own clock): its share of the bucket is their sum, its
        # levels the later's.
        shares: dict[int, ServicePoint] = {}
        for point in series:
            bucket = grid_slot(point.t, interval)
            if bucket <= last:
                earlier = shares.get(bucket)
                shares[bucket] = point if earlier is None else _successive(earlier, point)
        for bucket, point in shares.items():
            buckets.setdefault(bucket, []).append(point)
    merged = []
    for _, points in sorted(buckets.items()):
        merged.append(
            ServicePoint(
                max(p.t for p in points),
                max(p.seconds for p in points),
                sum(p.requests for p in points),
                sum(p.errors for p in points),
                max(p.p50 for p in points),
                max(p.p95 for p in points),
                max(p.p99 for p in points),
                sum(p.cpu_percent for p in points),
                sum(p.memory_bytes for p in points),
                sum(p.server_errors for p in points),
                _added(p.latency_counts for p in points),
                failing_in(points),
                sum(p.monitor_cpu_percent for p in points),
                sum(p.monitor_memory_bytes for p in points),
                *_slower_in(points),
                served_in(points),
            )
        )
    return merged


def grid_slot(t: float, interval: float) -> int:
    """The mark of the grid (``interval`` apart, from the epoch; its number) that a point
    closed at ``t`` counts at: the one it was closed at or after, up to three quarters of an
    interval late (a round that took long), or a quarter early (a flush, which closes an
    interval early)."""
    return math.floor(t / interval + 0.25)


def next_due(closed: float, interval: float) -> float:
    """When the interval closed at ``closed`` counts as closed for the schedule: at the mark
    it counts at (``grid_slot``), so that the next is due at the next mark, as in every worker
    (``Monitor`` evaluates ``interval`` after it). A mark less than a quarter of an interval
    away is the one it counts at, and so skipped: that interval would be a few ms long, its
    CPU read in 10 ms ticks (308%)."""
    return grid_slot(closed, interval) * interval


def _successive(earlier: ServicePoint, later: ServicePoint) -> ServicePoint:
    """Two successive intervals of one process as one."""
    return ServicePoint(
        later.t,
        earlier.seconds + later.seconds,
        earlier.requests + later.requests,
        earlier.errors + later.errors,
        max(earlier.p50, later.p50),
        max(earlier.p95, later.p95),
        max(earlier.p99, later.p99),
        later.cpu_percent,
        later.memory_bytes,
        earlier.server_errors + later.server_errors,
        _added([earlier.latency_counts, later.latency_counts]),
        failing_in([earlier, later]),
        later.monitor_cpu_percent,
        later.monitor_memory_bytes,
        *_slower_in([earlier, later]),
        served_in([earlier, later]),
    )


def _slower_in(points: Sequence[ServicePoint]) -> tuple[float, int]:
    """(``latency_bound``, ``slower``) of ``points`` as one: none counted unless each of
    them counted over the same bound."""
    bounds = {p.latency_bound for p in points}
    if len(bounds) != 1:
        return 0.0, 0
    return bounds.pop(), sum(p.slower for p in points)


def _added(counts: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
    """Bucket counts added up; empty unless every one of them was counted."""
    counts = list(counts)
    if not counts or any(not c for c in counts):
        return ()
    return tuple(int(x) for x in np.sum(counts, axis=0))


def failing_in(points: Iterable[ServicePoint]) -> tuple[tuple[str, int], ...]:
    """The server errors of ``points`` by model version, added up, most first."""
    total: Counter[str] = Counter()
    for point in points:
        total.update(dict(point.failing))
    return tuple(total.most_common())


def served_in(points: Iterable[ServicePoint]) -> tuple[tuple[str, int], ...]:
    """The requests of ``points`` by model version, added up, most first."""
    total: Counter[str] = Counter()
    for point in points:
        total.update(dict(point.served))
    return tuple(total.most_common())
