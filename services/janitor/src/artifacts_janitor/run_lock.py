"""The run lock: one cleanup run at a time across every janitor replica.

arq's unique job ids stop a *job* from being enqueued twice, but not two different jobs
(a cron run and an admin's request, a run enqueued by hand, an arq retry) from deleting
at once. redis-py's ``Lock`` does: a key with a lease, taken only if free, its lease
renewed (``reacquire``) while the run lives, released only by its holder. A janitor
killed mid-run stops renewing, the lease lapses, and the next run proceeds, so a crash
never blocks the next day.

The key and the value (``lock_token``: run id and attempt) are shared
(``artifacts_shared.cleanup_queue``): the api reads the holder to tell a live run from a
crashed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from artifacts_shared.cleanup_queue import RUN_LOCK_KEY, RunId, lock_holder

__all__ = ["RunLock"]

logger = logging.getLogger(__name__)


class RunLock:
    """The lock for one attempt of one run; ``token`` says which (``lock_token``)."""

    def __init__(self, redis: Redis, token: str, *, lease: float, key: str = RUN_LOCK_KEY) -> None:
        self._redis = redis
        self._token = token
        self.lease = lease
        self._lock = Lock(redis, key, timeout=lease, thread_local=False)
        self.holder: RunId | None = None
        """Who held the lock when ``acquire`` gave up."""
        self.lost = asyncio.Event()
        """Set when the lease could not be renewed: another run may now start."""

    async def acquire(self, *, wait: float, poll: float = 0.25) -> bool:
        """Take the lock, waiting up to ``wait`` seconds for its holder to go."""
        self._lock.sleep = poll
        if await self._lock.acquire(blocking_timeout=wait, token=self._token):
            return True
        self.holder = lock_holder(await self._redis.get(self._lock.name))
        return False

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[asyncio.Event]:
        """Renew the acquired lock until the block ends, then release it.

        Yields ``lost``, which the block should check: once set, the lease may have been
        taken by another run and this one should stop.
        """
        renewer = asyncio.create_task(self._keep_renewing(), name="run-lock-renewer")
        try:
            yield self.lost
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self._lock.release()
            except LockError:
                pass  # no longer ours: never remove another run's lock
            except RedisError as err:
                # The lease lapses by itself; the next run waits at most that long.
                logger.warning("could not release the run lock: %s", err)

    async def _keep_renewing(self) -> None:
        interval = self.lease / 3
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await self._lock.reacquire()
            except LockError:  # LockNotOwnedError: the lease lapsed and someone took it
                self.lost.set()
                return
            except RedisError as err:
                # A blip is fine while the lease still runs; past it, assume the worst.
                logger.warning("could not renew the run lock: %s", err)
                if time.monotonic() - renewed_at >= self.lease:
                    self.lost.set()
                    return
                continue
            renewed_at = time.monotonic()
