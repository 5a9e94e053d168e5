"""The Redis client, and the names the api and the janitor meet by on the arq queue.

The two services never import each other (ARCHITECTURE section 2); these constants are
the whole of their agreement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from artifacts_shared.settings import RedisSettings

__all__ = ["CLEANUP_FUNCTION", "open_redis"]

CLEANUP_FUNCTION = "cleanup_expired_artifacts"
"""The arq function the janitor runs and the api enqueues."""


@asynccontextmanager
async def open_redis(settings: RedisSettings, *, timeout: float = 5.0) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        yield client
    finally:
        await client.aclose()
