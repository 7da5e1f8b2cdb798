"""Finding logged requests by id, with the search built when labels ask, not as requests come.

Every logged batch holds its request ids (a JSON array). Indexing each id as it is written
was most of what logging cost (a B-tree insert of a random key per request: ten times the rest
of the write). Labels come later, for some requests, often never; so instead a ``Locator``
reads the id lists of the batches it has not read yet whenever it is asked, and keeps
request id -> batch and position in memory. A server that is never sent labels never builds
it; one that is reads each batch's ids once.

Batches are read by id, and ids are given out in one order and committed in another (on
PostgreSQL, by several processes at once): a batch may become visible after one with a higher
id was read. So the locator reads every unread batch above a *settled* id, and only calls an
id settled a minute after it saw it (no write transaction of the log is open that long).
Everything it returns is checked against the batch itself, so a trimmed batch, or a batch id
that SQLite gave out again, is a miss rather than a wrong answer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, func, select

SETTLE_SECONDS = 60.0
"""How long after a locator saw a batch id it takes every lower id to be committed."""

_POSITION_BITS = 32

PLACES_PER_ID = 8
"""Where one request id was logged, at most: its newest places. A client that sends every
request with the same id (a fixed ``x-request-id``) grew one list without end, and each label
for it looked through all of it (2.7 s a call after two minutes at 7,000 requests/s)."""


class Locator:
    """Request id -> (batch id, position) for the batches of ``table`` read so far."""

    def __init__(
        self,
        table: Table,
        capacity: int,
        request_ids: Callable[[Mapping[Any, Any]], list[str] | None],
        columns: Sequence[Column[Any]],
    ) -> None:
        self._table = table
        self._capacity = capacity
        self._request_ids = request_ids
        """A batch's request ids from its row of ``columns`` (None: the batch has gone)."""
        self._columns = columns
        # One int (batch id and position) per request id; a list of them for an id logged
        # more than once (a client may send the same id twice, or to two models).
        self._where: dict[str, int | list[int]] = {}
        self._read: set[int] = set()  # batches read above the settled id
        self._settled = 0
        self._seen: deque[tuple[float, int]] = deque()  # (when, highest id seen then)

    def __len__(self) -> int:
        return len(self._where)

    def refresh(self, conn: Connection, now: float | None = None) -> None:
        """Read the id lists of the batches not read yet."""
        now = time.monotonic() if now is None else now
        table = self._table
        ids = conn.execute(select(table.c.id).where(table.c.id > self._settled)).scalars().all()
        unread = sorted(int(i) for i in ids if int(i) not in self._read)
        for start in range(0, len(unread), 200):
            chunk = unread[start : start + 200]
            query = select(table.c.id, *self._columns).where(table.c.id.in_(chunk))
            for row in conn.execute(query).mappings():
                request_ids = self._request_ids(row)
                if request_ids is not None:
                    self._add(int(row["id"]), request_ids)
        highest = max((int(i) for i in ids), default=self._settled)
        if not self._seen or self._seen[-1][1] != highest:
            self._seen.append((now, highest))
        while self._seen and self._seen[0][0] <= now - SETTLE_SECONDS:
            self._settled = max(self._settled, self._seen.popleft()[1])
            self._read = {i for i in self._read if i > self._settled}
        if len(self._where) > 2 * self._capacity:
            self._forget_below(conn.execute(select(func.min(table.c.id))).scalar() or 0)

    def candidates(self, request_ids: Iterable[str]) -> dict[str, list[tuple[int, int]]]:
        """Where each of ``request_ids`` may be, newest first (absent ones are left out)."""
        mask = (1 << _POSITION_BITS) - 1
        out: dict[str, list[tuple[int, int]]] = {}
        for request_id in request_ids:
            places = self._where.get(request_id)
            if places is None:
                continue
            packed = [places] if isinstance(places, int) else sorted(places, reverse=True)
            out[request_id] = [(p >> _POSITION_BITS, p & mask) for p in packed]
        return out

    def _add(self, batch_id: int, request_ids: list[str]) -> None:
        self._read.add(batch_id)
        where = self._where
        base = batch_id << _POSITION_BITS
        for position, request_id in enumerate(request_ids):
            place = base + position
            known = where.setdefault(request_id, place)
            if known != place:
                if isinstance(known, int):
                    where[request_id] = [known, place]
                else:
                    known.append(place)
                    if len(known) > PLACES_PER_ID:
                        del known[: len(known) - PLACES_PER_ID]

    def _forget_below(self, lowest: int) -> None:
        """Drop what points at batches trimmed away (ids below ``lowest``)."""
        floor = lowest << _POSITION_BITS
        kept: dict[str, int | list[int]] = {}
        for request_id, places in self._where.items():
            if isinstance(places, int):
                if places >= floor:
                    kept[request_id] = places
            else:
                live = [p for p in places if p >= floor]
                if live:
                    kept[request_id] = live[0] if len(live) == 1 else live
        self._where = kept
