"""Observations of a Prometheus histogram series counted per bucket on the request path, and
added to the histogram in bulk at a flush."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client import Histogram


class Tally:
    """Observations of one histogram series, counted per bucket until the next flush."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def add(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times

    def flush_into(self, child: Histogram) -> None:
        """Add what was counted to a ``Histogram`` child, as that many ``observe`` calls would.

        prometheus_client has no bulk observe; this adds to the child's bucket and sum values
        (the same ones ``observe`` adds to, one at a time), so that a batch of a thousand
        requests costs a dozen additions, not a thousand observe calls.
        """
        if not any(self.counts):
            return
        for value, count in zip(child._buckets, self.counts, strict=True):
            if count:
                value.inc(count)
        child._sum.inc(self.total)
        self.counts = [0] * len(self.counts)
        self.total = 0.0
