"""Result caches: answers to inputs seen before, keyed by model version and input bytes.

Off by default: most traffic never repeats, and a cache only pays where it does (lookups of
the same entity, retries, dashboards polling the same rows). Entries expire after a TTL, so
that a cache never outlives its usefulness; a version's answers are immutable, so there is
nothing else to invalidate. Three stores: this process's memory, a directory (shared by the
workers of one machine, ``disk_result_cache``), or Redis (shared by every replica,
``redis_result_cache``). Entries and keys: ``cache_entries``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

from modelpilot.config import Settings
from modelpilot.errors import BadRequest
from modelpilot.repeated_errors import RepeatedErrors
from modelpilot.serving.cache_entries import DamagedEntry, Outputs, Unstorable

logger = logging.getLogger(__name__)

KINDS = ("off", "memory", "disk", "redis")

RETRY_SECONDS = 5.0
"""How long a store that failed is left alone before it is asked again."""

LOOKUP_SHARE = 0.5
"""The part of a request's deadline that its cache lookup may take. Past it the lookup is a
miss and the model answers in what is left: a cache is there to save time, so it must never
turn a request that the model would have answered in time into a 504 (a Triton client that
sets a timeout expects its answer, from a cache or not, within it)."""

MAX_PENDING_STORES = 64
"""Most answers being stored in the background at once; past that an answer is not stored (a
store that is slow or hangs must not pile up a task per request)."""

CLOSE_SECONDS = 2.0
"""How long closing waits for the stores still under way."""


class ResultCache(ABC):
    """Counts its hits and misses; subclasses store.

    A store that fails (Redis gone, a disk full) is a cache that misses: serving goes on
    without it. It is then left alone for ``retry_seconds``, so that requests neither wait
    on it one after another (up to its timeout each, if its host does not answer) nor each
    log the same warning; the first request after that asks it again. An outage is warned of
    once, and over when a store succeeds (or a lookup, if only lookups failed): a full or
    read-only disk still reads, so a lookup that found nothing said nothing of the stores,
    and an "answers again" followed 2 ms later by the next failed store was logged every
    5 s for as long as the disk was full."""

    own_limit: float = math.inf
    """Seconds one operation of the store takes at most on its own (its socket timeout, say):
    a request whose share of its deadline is longer waits on the store directly."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self.hits = 0
        self.misses = 0
        self.errors = 0
        """Lookups and stores that failed, damaged entries among them."""
        self.damaged = 0
        """Entries that did not read back (deleted, and answered by the model)."""
        self.late = 0
        """Lookups that took longer than their request's share of its deadline (misses)."""
        self.retry_seconds = RETRY_SECONDS
        self._resting_until: float | None = None
        """While the store is left alone, when to ask it again (monotonic); else None."""
        self._down: set[str] | None = None
        """In an outage, the operations (lookup, store) that failed in it; else None."""
        self._pending: set[asyncio.Task[Any]] = set()
        self._damage_log = RepeatedErrors(logger, level=logging.WARNING)

    async def get(self, key: str, within: float | None = None) -> Outputs | None:
        """The answer stored for ``key``, or None; waits at most ``within`` seconds (a lookup
        that takes longer goes on in the background, and still tells whether the store
        works)."""
        found = None
        if not self._resting():
            if within is None or within >= self.own_limit:
                found = await self._lookup(key)
            else:
                found = await self._lookup_within(key, within)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def _lookup(self, key: str) -> Outputs | None:
        try:
            found = await self._get(key)
        except DamagedEntry as exc:
            await self._damaged(key, exc)
            return None
        except Exception as exc:
            self._failed("lookup", exc)
            return None
        self._answered("lookup")
        return found

    async def _lookup_within(self, key: str, within: float) -> Outputs | None:
        task = asyncio.ensure_future(self._lookup(key))
        done, _ = await asyncio.wait((task,), timeout=max(within, 0.0))
        if done:
            return task.result()
        self.late += 1
        self._keep(task)
        return None

    async def set(self, key: str, outputs: Outputs) -> None:
        """Store ``outputs`` for ``key`` now (unless the store is left alone)."""
        if self._resting():
            return
        try:
            await self._set(key, outputs)
        except Unstorable as exc:
            logger.debug("result cache: an answer not stored: %s", exc)
        except Exception as exc:
            self._failed("store", exc)
        else:
            self._answered("store")

    async def save(self, key: str, outputs: Outputs) -> None:
        """Store ``outputs`` for ``key`` in the background: the answer is not kept waiting on
        the store (a Redis that does not answer held each one up to its socket timeout)."""
        if self._resting():
            return
        if len(self._pending) >= MAX_PENDING_STORES:
            logger.debug(
                "result cache: %d stores under way; an answer not stored", MAX_PENDING_STORES
            )
            return
        self._keep(asyncio.ensure_future(self.set(key, outputs)))

    def _keep(self, task: asyncio.Task[Any]) -> None:
        # A reference, or the loop may collect the task before it ends.
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settled(self) -> None:
        """Wait for the stores (and late lookups) under way to end."""
        while self._pending:
            await asyncio.wait(tuple(self._pending))

    def _resting(self) -> bool:
        return self._resting_until is not None and time.monotonic() < self._resting_until

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        if self._down is None:
            self._down = set()
            logger.warning(
                "result cache %s failed: %s; serving without the cache, which is asked "
                "again every %.0f s",
                what,
                exc,
                self.retry_seconds,
            )
        else:
            logger.debug("result cache %s failed again: %s", what, exc)
        self._down.add(what)
        self._resting_until = time.monotonic() + self.retry_seconds

    def _answered(self, what: str) -> None:
        self._resting_until = None
        down = self._down
        if down is not None and (what == "store" or "store" not in down):
            logger.warning("result cache answers again; serving with it")
            self._down = None

    async def _damaged(self, key: str, exc: DamagedEntry) -> None:
        """An entry that does not read back is a miss for its key alone, and deleted (else
        it stayed, and missed, until its TTL ran out): the store itself answered."""
        self.errors += 1
        self.damaged += 1
        self._damage_log.error(
            "damaged",
            "result cache entry %s did not read back (%s); deleted, the model answers it",
            key,
            exc,
        )
        try:
            await self._discard(key)
        except Exception as failure:
            logger.debug("result cache: deleting damaged entry %s failed: %s", key, failure)
        self._answered("lookup")

    @abstractmethod
    async def _get(self, key: str) -> Outputs | None:
        """The entry of ``key``, None if there is none; DamagedEntry if it does not read."""

    @abstractmethod
    async def _set(self, key: str, outputs: Outputs) -> None: ...

    @abstractmethod
    async def _discard(self, key: str) -> None:
        """Delete the entry of ``key``, if there is one."""

    async def close(self) -> None:
        """Let the stores under way end (for at most ``CLOSE_SECONDS``), then release."""
        if self._pending:
            await asyncio.wait(tuple(self._pending), timeout=CLOSE_SECONDS)
            for task in tuple(self._pending):
                task.cancel()


class MemoryResultCache(ResultCache):
    """Least-recently-used entries in this process, at most ``max_entries``. It keeps the
    model's own arrays: nothing to encode, nothing to wait on."""

    own_limit = 0.0

    def __init__(self, ttl_seconds: float, max_entries: int) -> None:
        super().__init__(ttl_seconds)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Outputs]] = OrderedDict()

    async def save(self, key: str, outputs: Outputs) -> None:
        await self.set(key, outputs)  # as fast as scheduling it would be

    async def _get(self, key: str) -> Outputs | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def _discard(self, key: str) -> None:
        self._entries.pop(key, None)

    async def _set(self, key: str, outputs: Outputs) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, outputs)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def create_result_cache(settings: Settings) -> ResultCache | None:
    """The cache the settings ask for, or None when it is off."""
    kind = settings.result_cache
    ttl = settings.result_cache_ttl_seconds
    if kind == "off":
        return None
    if kind == "memory":
        return MemoryResultCache(ttl, settings.result_cache_max_entries)
    if kind == "disk":
        from modelpilot.serving.disk_result_cache import DiskResultCache

        root = settings.result_cache_dir
        if root is None:
            raise BadRequest("MODELPILOT_RESULT_CACHE=disk needs MODELPILOT_RESULT_CACHE_DIR")
        return DiskResultCache(ttl, root, settings.result_cache_max_entries)
    if kind == "redis":
        from modelpilot.serving.redis_result_cache import RedisResultCache

        if not settings.redis_url:
            raise BadRequest("MODELPILOT_RESULT_CACHE=redis needs MODELPILOT_REDIS_URL")
        return RedisResultCache(ttl, settings.redis_url)
    raise BadRequest(f"unknown result cache {kind!r}; use one of {', '.join(KINDS)}")
