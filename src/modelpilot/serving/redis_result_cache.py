"""The Redis result cache: entries with a TTL in a Redis that every replica shares."""

from __future__ import annotations

from typing import Any

from modelpilot.errors import MissingExtra
from modelpilot.serving.cache_entries import Outputs, pack, unpack
from modelpilot.serving.result_cache import ResultCache

SOCKET_SECONDS = 1.0
"""The longest one command waits on a Redis that does not answer."""


class RedisResultCache(ResultCache):
    """Entries in Redis with a TTL, shared by every replica."""

    own_limit = SOCKET_SECONDS

    def __init__(self, ttl_seconds: float, url: str, prefix: str = "modelpilot:result:") -> None:
        super().__init__(ttl_seconds)
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise MissingExtra("redis", "redis") from None
        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=SOCKET_SECONDS, socket_connect_timeout=SOCKET_SECONDS
        )

    async def _get(self, key: str) -> Outputs | None:
        data = await self._client.get(self.prefix + key)
        return unpack(data) if data is not None else None

    async def _set(self, key: str, outputs: Outputs) -> None:
        # At least 1 ms: Redis refuses an expiry of 0.
        ttl_ms = max(1, int(self.ttl * 1000))
        await self._client.set(self.prefix + key, pack(outputs), px=ttl_ms)

    async def _discard(self, key: str) -> None:
        await self._client.delete(self.prefix + key)

    async def close(self) -> None:
        await super().close()
        await self._client.aclose()
