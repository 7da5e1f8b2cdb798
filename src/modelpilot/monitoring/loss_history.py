"""What monitoring lost, by worker, as the evaluations of the process that decides on alerts
saw it: the figures the ``monitoring_losing`` rule judges (``alert_rules.loss_conditions``).

The figures are the counters ``/metrics`` exports, ``modelpilot_monitor_dropped_total`` and
``modelpilot_monitor_unlogged_total``: this process's own, read live, and with ``serve
--workers`` each other worker's as its last snapshot holds them (published every monitoring
round, so up to a round behind; ``siblings``). A worker started in place of one that died
carries its predecessor's counters on in its snapshots, so a worker's figures never go back
but for a snapshot read in the instant of a death: each worker's increase is counted from the
highest figure seen of it, never twice. What a killed worker lost after its last snapshot is in
none, as it is in no scrape.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelpilot.monitoring.siblings import WorkerSnapshot

COUNTERS = ("modelpilot_monitor_dropped_total", "modelpilot_monitor_unlogged_total")
_SAMPLE = re.compile(
    rb"^(modelpilot_monitor_(?:dropped|unlogged)_total)(?:\{[^}]*\})? ([^ \n]+)", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class Lost:
    """Requests monitoring lost: left unmonitored (``dropped``), or monitored but never
    written to the inference log (``unlogged``)."""

    dropped: float = 0.0
    unlogged: float = 0.0

    @property
    def total(self) -> float:
        return self.dropped + self.unlogged

    def __add__(self, other: Lost) -> Lost:
        return Lost(self.dropped + other.dropped, self.unlogged + other.unlogged)

    def __sub__(self, other: Lost) -> Lost:
        return Lost(self.dropped - other.dropped, self.unlogged - other.unlogged)


@dataclass(frozen=True, slots=True)
class LossWindow:
    """What was lost over the last ``seconds`` (fewer where the history is shorter, from
    ``since``), in all and by worker."""

    lost: Lost
    by_worker: dict[int, Lost]
    seconds: float
    covered: bool
    """Whether the history reaches back ``seconds``: if not, "nothing lost" is said of a
    shorter time only."""
    workers: bool = False
    """Whether the figures are those of the workers of ``serve --workers`` (by index)."""


def snapshot_lost(snapshot: WorkerSnapshot) -> Lost | None:
    """A worker's counters as its snapshot holds them (None if it holds neither)."""
    found: dict[bytes, float] = {}
    for match in _SAMPLE.finditer(snapshot.metrics):
        try:
            value = float(match[2])
        except ValueError:
            continue
        found[match[1]] = found.get(match[1], 0.0) + value
    if not found:
        return None
    dropped, unlogged = (found.get(name.encode(), 0.0) for name in COUNTERS)
    return Lost(dropped, unlogged)


def workers_lost(own_index: int, own: Lost, peers: Iterable[WorkerSnapshot]) -> dict[int, Lost]:
    """Every worker's counters by index: this one's (``own``, live) and its live peers'."""
    figures = {own_index: own}
    for snapshot in peers:
        lost = snapshot_lost(snapshot)
        if lost is not None and snapshot.index != own_index:
            figures[snapshot.index] = lost
    return figures


class LossHistory:
    """The requests monitoring lost since this process started watching, by worker, at each
    evaluation, kept for ``keep_seconds``."""

    def __init__(
        self,
        keep_seconds: float,
        now: float,
        baseline: Mapping[int, Lost] | None = None,
        workers: bool = False,
    ) -> None:
        """``baseline``: the figures known at ``now`` (a server alone: its counters start at
        0 with it), from which the history starts; without, each worker's first figure seen
        is its baseline (with workers, a worker 0 started in place of one that died finds its
        siblings' counters at what they lost before)."""
        self.keep_seconds = keep_seconds
        self.workers = workers
        self._highest: dict[int, Lost] = dict(baseline or {})
        """Each worker's highest figures seen: what it lost beyond them is new."""
        self._since: dict[int, Lost] = {}
        """What each worker lost since the history started."""
        self._points: deque[tuple[float, dict[int, Lost]]] = deque()
        if baseline is not None:
            self._points.append((now, {}))

    def record(self, now: float, figures: Mapping[int, Lost]) -> None:
        """Add what each worker's ``figures`` say it lost since it was last seen."""
        for worker, lost in figures.items():
            highest = self._highest.get(worker)
            if highest is None:
                self._highest[worker] = lost
                continue
            new = Lost(
                max(lost.dropped - highest.dropped, 0.0), max(lost.unlogged - highest.unlogged, 0.0)
            )
            self._highest[worker] = Lost(
                max(lost.dropped, highest.dropped), max(lost.unlogged, highest.unlogged)
            )
            if new.total:
                self._since[worker] = self._since.get(worker, Lost()) + new
        self._points.append((now, dict(self._since)))
        # Kept: every point within ``keep_seconds``, and the newest before them, which a
        # window of ``keep_seconds`` starts from.
        horizon = now - self.keep_seconds
        while len(self._points) > 1 and self._points[1][0] <= horizon:
            self._points.popleft()

    def window(self, now: float, seconds: float) -> LossWindow:
        """What was lost over the last ``seconds`` (up to ``keep_seconds``)."""
        if not self._points:
            return LossWindow(Lost(), {}, 0.0, False, self.workers)
        horizon = now - seconds
        start_at, start = self._points[0]
        for t, since in self._points:
            if t > horizon:
                break
            start_at, start = t, since
        _, last = self._points[-1]
        by_worker = {
            worker: lost - start.get(worker, Lost())
            for worker, lost in last.items()
            if (lost - start.get(worker, Lost())).total
        }
        total = sum(by_worker.values(), Lost())
        covered = start_at <= horizon
        span = seconds if covered else now - start_at
        return LossWindow(total, by_worker, span, covered, self.workers)
