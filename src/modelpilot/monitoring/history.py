"""Recent service history: throughput, latency percentiles and errors, one point per interval.

Requests are recorded on the event loop (a list append or two): the history is an observer
of the engine of its own, beside the monitor. The monitor's thread closes an interval every
few seconds and turns it into one point. The dashboard draws the points; the error-rate and
latency alerts read them.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psutil

from modelpilot.serving.observers import InferenceObserver


@dataclass(frozen=True, slots=True)
class ServicePoint:
    t: float
    seconds: float
    requests: int
    errors: int
    p50: float
    p95: float
    p99: float
    cpu_percent: float
    memory_bytes: int
    server_errors: int = 0
    """Of ``errors``, those the server failed (5xx: the model raised, timed out, overloaded);
    the rest were the clients' (4xx: bad input, a model that does not exist)."""

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
        }


class ServiceHistory(InferenceObserver):
    """The engine's observer that keeps the service history (the monitor reads it)."""

    def __init__(self, points: int = 300) -> None:
        self.points: deque[ServicePoint] = deque(maxlen=points)
        # Seconds as C doubles, not a list of float objects: the event loop then holds no
        # object per request until the interval closes, and the percentiles read the array
        # as it is.
        self._durations = array("d")
        self._errors = array("d")
        self._server_errors = array("d")
        self._opened = time.time()
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only starts the measurement

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
        if status != "ok":
            self._errors.append(seconds)
            if status[:1] == "5":
                self._server_errors.append(seconds)

    def close_interval(self, now: float | None = None) -> ServicePoint:
        now = time.time() if now is None else now
        # Swapped, not cleared: a request recorded meanwhile lands in one array or the other.
        taken, self._durations = self._durations, array("d")
        errors, self._errors = self._errors, array("d")
        server_errors, self._server_errors = self._server_errors, array("d")
        durations = np.frombuffer(taken, dtype=np.float64)
        opened, self._opened = self._opened, now
        if len(durations):
            p50, p95, p99 = (float(x) for x in np.percentile(durations, [50, 95, 99]))
        else:
            p50 = p95 = p99 = 0.0
        point = ServicePoint(
            now,
            max(now - opened, 1e-9),
            len(durations),
            len(errors),
            p50,
            p95,
            p99,
            self._process.cpu_percent(),
            self._process.memory_info().rss,
            len(server_errors),
        )
        self.points.append(point)
        return point


def merge_points(
    own: list[ServicePoint], others: Sequence[Sequence[ServicePoint]], interval: float
) -> list[ServicePoint]:
    """Several processes' histories (``others``: one per sibling) as one: points in the same
    interval are combined.

    Requests, errors, CPU and memory add up; for latency percentiles the worst process's
    stands for the whole (percentiles do not add, and the worst is what an alert wants).
    Intervals that some process has not published yet are left out: summed without it, the
    newest point would show a fraction of the requests, CPU and memory.
    """
    others = [series for series in others if series]
    if not others:
        return own
    histories = [own, *others] if own else others
    last = min(round(series[-1].t / interval) for series in histories)
    buckets: dict[int, list[ServicePoint]] = {}
    for series in histories:
        # One process may have closed two intervals within one (a flush closes one early,
        # and each thread keeps its own clock): its share of the bucket is their sum, its
        # levels the later's.
        shares: dict[int, ServicePoint] = {}
        for point in series:
            bucket = round(point.t / interval)
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
            )
        )
    return merged


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
    )
