"""Sliding windows over counts: bounded by rows and by age, updated by adding and subtracting.

A window is a queue of chunks (the counts of a few rows that arrived together) and the running
totals of the chunks it holds; a chunk leaves, whole, when it is older than ``max_seconds`` or
when the window would still hold ``max_rows`` rows without it (so a window holds at least
``max_rows`` rows, if as many came, and less than one chunk more: see ``SlidingWindow``).
Nothing is recounted, so keeping a window current costs one vector addition per chunk in and
one subtraction per chunk out (except when a chunk of huge sums leaves: see ``EXACT``).

Small chunks that arrive close together are kept as one (see ``MERGED_ROWS``): each chunk is
a vector of every feature's bins, so a window of one-row chunks held thousands of them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

EXACT = 2.0**53
"""Past this, float64 no longer holds every whole number: a running total that held a sum this
large cannot give back the smaller ones exactly once it is taken away (1e308 + 700 - 1e308 is
0), and two of 1e308 make inf, which taken away leaves NaN."""

MERGED_ROWS = 50
"""A chunk takes in the chunks that follow it while it holds at most a ``MERGED_ROWS``th of the
window's rows, and they came within a ``MERGED_SPAN``th of its age (a monitoring round is a
chunk). Each chunk keeps a copy of every feature's bins: a 500-feature version taking one
request a round kept 78 KB a request, 390 MB once its window of 5,000 rows was full, which
rounds of 100 requests would have held in 4 MB. Merged, a window holds at most some
``2 * MERGED_ROWS + MERGED_SPAN`` small chunks (160 by default), beside the large ones; it
may hold a merged chunk's rows more than ``max_rows`` (100 by default, where a round of 1,700
rows already held 1,699), and its rows leave up to a ``MERGED_SPAN``th of its age early (one
minute of the hour), never late."""

MERGED_SPAN = 60
"""See ``MERGED_ROWS``."""


@dataclass(slots=True)
class Chunk:
    at: float
    """When its oldest rows came: it leaves the window once they are too old."""
    rows: int
    counts: np.ndarray
    sums: np.ndarray
    huge: bool = False
    """Its sums reach ``EXACT`` (or are not finite): when it leaves, the window's sums are
    added up again from the chunks that stay, rather than taken away from."""
    owned: bool = False
    """Its arrays are the window's own (made when it first took another chunk in), not the
    caller's, so that more can be added to them in place."""


class SlidingWindow:
    """Running totals of the most recent chunks: those of the last ``max_seconds``, less the
    oldest ones that the window would hold ``max_rows`` rows without. So it holds at least
    ``max_rows`` rows where that many came in time, and fewer than ``max_rows`` plus its
    oldest chunk's rows: the monitor's chunk is a monitoring round's rows of a version (of
    more than ``max_rows``, their last ``max_rows``), so a window of 5,000 rows held 6,300
    under traffic of 1,300 rows a round, and may hold up to twice its rows less one.

    Chunks leave whole because their rows are gone: only their counts are kept, and a
    chunk's oldest rows cannot be taken out of them. Trimmed to the row, the window would
    keep every row it holds (``max_rows`` of every feature, where ``RecentRows`` keeps
    ``large_sample_rows``) to count again the part of a chunk that leaves."""

    def __init__(self, counts_size: int, sums_size: int, max_rows: int, max_seconds: float) -> None:
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.counts = np.zeros(counts_size, dtype=np.int64)
        self.sums = np.zeros(sums_size, dtype=np.float64)
        self.rows = 0
        self._chunks: deque[Chunk] = deque()
        self._merged_rows = max_rows // MERGED_ROWS
        self._merged_span = max_seconds / MERGED_SPAN

    def __len__(self) -> int:
        """How many chunks it keeps."""
        return len(self._chunks)

    def add(self, rows: int, counts: np.ndarray, sums: np.ndarray, at: float | None = None) -> None:
        at = time.time() if at is None else at
        huge = _huge(sums)
        last = self._chunks[-1] if self._chunks else None
        if (
            last is not None
            and last.rows + rows <= self._merged_rows
            and 0.0 <= at - last.at <= self._merged_span
        ):
            if not last.owned:
                last.counts, last.sums, last.owned = last.counts.copy(), last.sums.copy(), True
            last.counts += counts
            with np.errstate(over="ignore", invalid="ignore"):
                last.sums += sums
            last.rows += rows
            last.huge = last.huge or huge or _huge(last.sums)
        else:
            self._chunks.append(Chunk(at, rows, counts, sums, huge))
        self.counts += counts
        with np.errstate(over="ignore", invalid="ignore"):
            self.sums += sums
        self.rows += rows
        while len(self._chunks) > 1 and self.rows - self._chunks[0].rows >= self.max_rows:
            self._drop()
        self.expire(at)

    def expire(self, now: float | None = None) -> None:
        """Let go of chunks older than ``max_seconds``."""
        horizon = (time.time() if now is None else now) - self.max_seconds
        while self._chunks and self._chunks[0].at < horizon:
            self._drop()

    def _drop(self) -> None:
        chunk = self._chunks.popleft()
        self.counts -= chunk.counts
        self.rows -= chunk.rows
        if not chunk.huge:
            self.sums -= chunk.sums
        elif self._chunks:
            with np.errstate(over="ignore", invalid="ignore"):
                self.sums = np.sum([c.sums for c in self._chunks], axis=0)
        else:
            self.sums = np.zeros_like(self.sums)


def _huge(sums: np.ndarray) -> bool:
    """Whether ``sums`` reach ``EXACT`` (NaN does too)."""
    return bool(sums.size) and not np.abs(sums).max() < EXACT


class RecentRows:
    """The last ``capacity`` rows of a 2-D stream, for tests that need raw values."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._parts: deque[np.ndarray] = deque()
        self._rows = 0

    def add(self, rows: np.ndarray) -> None:
        if self.capacity <= 0 or rows.shape[0] == 0:
            return
        if rows.shape[0] >= self.capacity:
            self._parts.clear()
            self._parts.append(rows[-self.capacity :].copy())
            self._rows = self.capacity
            return
        self._parts.append(rows)
        self._rows += rows.shape[0]
        while self._rows - self._parts[0].shape[0] >= self.capacity:
            self._rows -= self._parts.popleft().shape[0]

    def last(self, n: int) -> np.ndarray | None:
        """The last ``n`` rows, or None when fewer than ``n`` are kept."""
        if n > self._rows or not self._parts:
            return None
        stacked = np.concatenate(list(self._parts)) if len(self._parts) > 1 else self._parts[0]
        return stacked[stacked.shape[0] - n :]
