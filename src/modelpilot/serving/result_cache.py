"""Result caches: answers to inputs seen before, keyed by model version and input bytes.

Off by default: most traffic never repeats, and a cache only pays where it does (lookups of
the same entity, retries, dashboards polling the same rows). Entries expire after a TTL, so
that a cache never outlives its usefulness; a version's answers are immutable, so there is
nothing else to invalidate. Three stores: this process's memory, a directory (shared by the
workers of one machine), or Redis (shared by every replica).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelpilot.config import Settings
from modelpilot.errors import BadRequest, MissingExtra
from modelpilot.protocol.datatypes import datatype_of
from modelpilot.protocol.raw import decode_raw, encode_raw
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Batch

logger = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]
KINDS = ("off", "memory", "disk", "redis")


_KINDS = {type(None): 1, str: 2, bytes: 3, float: 4, int: 5, bool: 6}
"""The kinds of value an object array's element may be, by a byte each (others: 0)."""


def cache_key(version: ModelVersion, batch: Batch, outputs: Sequence[str]) -> str:
    """sha256 over the version and its artifact's sha256, the outputs asked for, and every
    input's dtype, shape and bytes. The artifact's hash, not the version's number alone: two
    registries (staging's and production's, say) sharing one Redis each have an ``iris:1`` of
    their own, and one served the other's answers."""
    head = f"{version.model}:{version.version}:{version.artifact_sha256}:{','.join(outputs)}"
    digest = hashlib.sha256(head.encode())
    for name in sorted(batch):
        array = batch[name]
        digest.update(f"|{name}:{array.dtype.str}:{array.shape}|".encode())
        if array.dtype.kind == "O":
            # Rows of text and numbers: the protocol's bytes spell None as "None" and 1.0 as
            # "1.0", so a missing value and that text (or a number and its text) need their
            # kinds beside them to be told apart.
            digest.update(bytes(_KINDS.get(type(v), 0) for v in array.flat))
            digest.update(encode_raw("BYTES", array))
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def pack(outputs: Outputs) -> bytes:
    """Outputs as bytes: a JSON header (names, datatypes, shapes, sizes) and raw tensors."""
    chunks = []
    header = []
    for name, array in outputs.items():
        datatype = datatype_of(array)
        raw = encode_raw(datatype, array)
        header.append([name, datatype, list(array.shape), len(raw)])
        chunks.append(raw)
    head = orjson.dumps(header)
    return struct.pack("<I", len(head)) + head + b"".join(chunks)


def unpack(data: bytes) -> Outputs:
    (length,) = struct.unpack_from("<I", data)
    header = orjson.loads(data[4 : 4 + length])
    offset = 4 + length
    result = {}
    for name, datatype, shape, size in header:
        result[name] = decode_raw(name, datatype, shape, data[offset : offset + size]).copy()
        offset += size
    return result


RETRY_SECONDS = 5.0
"""How long a store that failed is left alone before it is asked again."""


class ResultCache(ABC):
    """Counts its hits and misses; subclasses store.

    A store that fails (Redis gone, a disk full) is a cache that misses: serving goes on
    without it. It is then left alone for ``retry_seconds``, so that requests neither wait
    on it one after another (up to its timeout each, if its host does not answer) nor each
    log the same warning; the first request after that asks it again."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.retry_seconds = RETRY_SECONDS
        self._resting_until: float | None = None
        """While the store is left alone, when to ask it again (monotonic); else None."""

    async def get(self, key: str) -> Outputs | None:
        found = None
        if not self._resting():
            try:
                found = await self._get(key)
            except Exception as exc:
                self._failed("lookup", exc)
            else:
                self._answered()
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def set(self, key: str, outputs: Outputs) -> None:
        if self._resting():
            return
        try:
            await self._set(key, outputs)
        except Exception as exc:
            self._failed("store", exc)
        else:
            self._answered()

    def _resting(self) -> bool:
        return self._resting_until is not None and time.monotonic() < self._resting_until

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        if self._resting_until is None:
            logger.warning(
                "result cache %s failed: %s; serving without the cache, which is asked "
                "again every %.0f s",
                what,
                exc,
                self.retry_seconds,
            )
        else:
            logger.debug("result cache %s failed again: %s", what, exc)
        self._resting_until = time.monotonic() + self.retry_seconds

    def _answered(self) -> None:
        if self._resting_until is not None:
            logger.warning("result cache answers again; serving with it")
            self._resting_until = None

    @abstractmethod
    async def _get(self, key: str) -> Outputs | None: ...

    @abstractmethod
    async def _set(self, key: str, outputs: Outputs) -> None: ...

    async def close(self) -> None:
        return None


class MemoryResultCache(ResultCache):
    """Least-recently-used entries in this process, at most ``max_entries``."""

    def __init__(self, ttl_seconds: float, max_entries: int) -> None:
        super().__init__(ttl_seconds)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Outputs]] = OrderedDict()

    async def _get(self, key: str) -> Outputs | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def _set(self, key: str, outputs: Outputs) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, outputs)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class DiskResultCache(ResultCache):
    """One file per entry under ``root``; expired by its modification time."""

    def __init__(self, ttl_seconds: float, root: Path) -> None:
        super().__init__(ttl_seconds)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def _get(self, key: str) -> Outputs | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if stat.st_mtime + self.ttl < time.time():
            path.unlink(missing_ok=True)
            return None
        return unpack(path.read_bytes())

    async def _set(self, key: str, outputs: Outputs) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".entry-")
        with os.fdopen(fd, "wb") as out:
            out.write(pack(outputs))
        os.replace(tmp, path)


class RedisResultCache(ResultCache):
    """Entries in Redis with a TTL, shared by every replica."""

    def __init__(self, ttl_seconds: float, url: str, prefix: str = "modelpilot:result:") -> None:
        super().__init__(ttl_seconds)
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise MissingExtra("redis", "redis") from None
        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )

    async def _get(self, key: str) -> Outputs | None:
        data = await self._client.get(self.prefix + key)
        return unpack(data) if data is not None else None

    async def _set(self, key: str, outputs: Outputs) -> None:
        await self._client.set(self.prefix + key, pack(outputs), px=int(self.ttl * 1000))

    async def close(self) -> None:
        await self._client.aclose()


def create_result_cache(settings: Settings) -> ResultCache | None:
    """The cache the settings ask for, or None when it is off."""
    kind = settings.result_cache
    ttl = settings.result_cache_ttl_seconds
    if kind == "off":
        return None
    if kind == "memory":
        return MemoryResultCache(ttl, settings.result_cache_max_entries)
    if kind == "disk":
        root = settings.result_cache_dir
        if root is None:
            raise BadRequest("MODELPILOT_RESULT_CACHE=disk needs MODELPILOT_RESULT_CACHE_DIR")
        return DiskResultCache(ttl, root)
    if kind == "redis":
        if not settings.redis_url:
            raise BadRequest("MODELPILOT_RESULT_CACHE=redis needs MODELPILOT_REDIS_URL")
        return RedisResultCache(ttl, settings.redis_url)
    raise BadRequest(f"unknown result cache {kind!r}; use one of {', '.join(KINDS)}")
