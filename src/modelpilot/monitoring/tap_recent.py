"""The newest answers a tap keeps in memory, for labels whose requests the log does not hold.

With every request in the inference log, labels join there and nothing is kept here. With the
log off, or sampled, a label can only join an answer still in memory: the newest
``capacity`` requests' outputs are kept, batch by batch as they were taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from itertools import accumulate

from modelpilot.monitoring.tap_batches import Found, Merged


class RecentAnswers:
    """At least the last ``capacity`` requests' outputs, searched when labels come.

    Kept whole and searched (rarely, next to requests): indexing every request id as it
    passed cost more than binning it. Their outputs only, all a label joins: the inputs of as
    many requests would double what the log's own bound costs in memory. Not thread-safe:
    the tap calls it under its lock."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._kept: deque[Merged] = deque()
        self._requests = 0

    def keep(self, batches: Sequence[Merged]) -> None:
        kept = self._kept
        for merged in batches:
            kept.append(replace(merged, times=[], inputs={}))
            self._requests += len(merged.request_ids)
        while kept and self._requests - len(kept[0].request_ids) >= self.capacity:
            self._requests -= len(kept.popleft().request_ids)

    def find(self, model: str, request_ids: Sequence[str]) -> dict[str, Found]:
        """The kept answers of ``model`` to ``request_ids``: a request answered twice is
        found as last answered."""
        found: dict[str, Found] = {}
        wanted = set(request_ids)
        for merged in reversed(self._kept):  # newest first
            if not wanted:
                break
            if merged.version.model != model:
                continue
            hits = wanted.intersection(merged.request_ids)
            if not hits:
                continue
            wanted -= hits
            ends = accumulate(merged.rows)
            for request_id, end, rows in zip(merged.request_ids, ends, merged.rows, strict=True):
                if request_id in hits:  # a later answer in the batch replaces an earlier one
                    outputs = {n: v[end - rows : end] for n, v in merged.outputs.items()}
                    found[request_id] = Found(model, merged.version.version, outputs)
        return found
