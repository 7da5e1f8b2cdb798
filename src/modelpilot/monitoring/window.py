"""Sliding windows over counts: bounded by rows and by age, updated by adding and subtracting.

A window is a queue of chunks (the counts of a few rows that arrived together) and the running
totals of the chunks it holds; a chunk leaves when it is older than ``max_seconds`` or when the
window would still hold ``max_rows`` rows without it. Nothing is ever recounted, so keeping a
window current costs one vector addition per chunk in and one subtraction per chunk out.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Chunk:
    at: float
    rows: int
    counts: np.ndarray
    sums: np.ndarray


class SlidingWindow:
    """Running totals of the most recent chunks (at least ``max_rows`` rows, if there are)."""

    def __init__(self, counts_size: int, sums_size: int, max_rows: int, max_seconds: float) -> None:
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.counts = np.zeros(counts_size, dtype=np.int64)
        self.sums = np.zeros(sums_size, dtype=np.float64)
        self.rows = 0
        self._chunks: deque[Chunk] = deque()

    def add(self, rows: int, counts: np.ndarray, sums: np.ndarray, at: float | None = None) -> None:
        at = time.time() if at is None else at
        self._chunks.append(Chunk(at, rows, counts, sums))
        self.counts += counts
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
        self.sums -= chunk.sums
        self.rows -= chunk.rows


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
