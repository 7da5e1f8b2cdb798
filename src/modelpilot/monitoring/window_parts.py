"""The drift window the workers of a server share: each worker's window told in parts by age,
and the newest parts over every worker merged into one window of the configured rows.

Each worker keeps a whole window (up to ``MODELPILOT_DRIFT_WINDOW_ROWS`` rows of its own
traffic) and tells it in parts of consecutive rounds, oldest first; the merge takes the
newest parts, whichever worker holds them, until it holds the configured rows. A fixed share
a worker (``ceil(rows / N)`` each) held half the rows with two workers where one took most of
the traffic (one keep-alive client, or a proxy's persistent connections reach one worker),
and merged the idle worker's old rows with the busy one's new.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from modelpilot.monitoring.window import SlidingWindow

if TYPE_CHECKING:
    from modelpilot.monitoring.monitor_state import MonitorState

WINDOW_PARTS = 10
"""How many parts a worker's window is told in (each of at least a ``WINDOW_PARTS``th of the
window's rows, 500 by default): the merged window holds the configured rows and less than a
part more (plus, as one worker's does, less than a round's rows). Each part is a copy of every
feature's bins, so a busy version's snapshot is some ``WINDOW_PARTS`` times the size it was
with one set of counts a worker."""


@dataclass(frozen=True, slots=True)
class WindowPart:
    """The counts of consecutive chunks of one worker's window."""

    at: float
    """When its oldest rows came."""
    rows: int
    counts: np.ndarray
    sums: np.ndarray


class PartedWindow(SlidingWindow):
    """A ``SlidingWindow`` that can tell its chunks in parts, for the merge over workers."""

    def parts(self, rows: int) -> tuple[WindowPart, ...]:
        """The chunks it holds, grouped from the newest into parts of at least ``rows`` rows
        (the oldest part may hold fewer), oldest first. Copies: a chunk it holds may take
        more rows in later."""
        found: list[WindowPart] = []
        counts = np.zeros_like(self.counts)
        sums = np.zeros_like(self.sums)
        held, at = 0, 0.0
        for chunk in reversed(self._chunks):
            counts += chunk.counts
            with np.errstate(over="ignore", invalid="ignore"):
                sums += chunk.sums
            held, at = held + chunk.rows, chunk.at
            if held >= rows:
                found.append(WindowPart(at, held, counts, sums))
                counts, sums, held = np.zeros_like(self.counts), np.zeros_like(self.sums), 0
        if held:
            found.append(WindowPart(at, held, counts, sums))
        found.reverse()
        return tuple(found)


def part_rows(window_rows: int, parts: int) -> int:
    """The rows of a part of a window of ``window_rows`` told in ``parts`` parts."""
    return max(math.ceil(window_rows / parts), 1)


def newest(states: Sequence[MonitorState], rows: int) -> list[MonitorState]:
    """``states`` (of one version, their counts laid out alike) cut to the newest ``rows``
    rows over all of them: each state told in parts (``window_parts``) keeps those of its
    parts that are among the newest, taken from the newest until the states hold ``rows``
    rows; a state told whole (None: a process serving alone, or a window of totals alone)
    counts whole. The input rows each keeps for the KS test (``recent``) are cut to its
    newest rows as well."""
    # (A state pickled by a release before parts has none: it counts whole.)
    told_parts = [getattr(state, "window_parts", None) for state in states]
    if all(parts is None for parts in told_parts):
        return list(states)
    held = sum(s.window_rows for s, parts in zip(states, told_parts, strict=True) if parts is None)
    told = [(part.at, i, part) for i, parts in enumerate(told_parts) for part in (parts or ())]
    taken: dict[int, list[WindowPart]] = {}
    for _, i, part in sorted(told, key=lambda found: found[0], reverse=True):
        if held >= rows:
            break
        taken.setdefault(i, []).append(part)
        held += part.rows
    cut = []
    for i, (state, parts) in enumerate(zip(states, told_parts, strict=True)):
        if parts is None:
            cut.append(state)
            continue
        mine = taken.get(i, [])
        counts = np.zeros_like(state.counts)
        sums = np.zeros_like(state.sums)
        for part in mine:
            counts += part.counts
            with np.errstate(over="ignore", invalid="ignore"):
                sums += part.sums
        kept = sum(part.rows for part in mine)
        recent = state.recent
        if recent is not None and recent.shape[0] > kept:
            recent = recent[recent.shape[0] - kept :] if kept else None
        cut.append(
            replace(
                state,
                window_rows=kept,
                counts=counts,
                sums=sums,
                recent=recent,
                window_parts=None,
            )
        )
    return cut
