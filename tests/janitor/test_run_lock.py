"""The run lock on the real Redis: one holder, renewed while alive, lapsing when not."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from artifacts_janitor.run_lock import RunLock
from artifacts_shared.cleanup_queue import RUN_LOCK_KEY, lock_token

LEASE = 0.6


async def test_a_live_holder_keeps_the_lock_and_a_second_run_gives_up(redis: Redis) -> None:
    first = RunLock(redis, lock_token("run-a", 1), lease=LEASE)
    second = RunLock(redis, lock_token("run-b", 1), lease=LEASE)
    assert await first.acquire(wait=0)
    async with first.kept() as lost:
        # Waiting longer than a lease: only renewal can keep the first holder in place.
        assert not await second.acquire(wait=LEASE * 2, poll=0.05)
        assert second.holder == "run-a"
        assert not lost.is_set()
    assert await redis.get(RUN_LOCK_KEY) is None


async def test_a_crashed_holders_lease_lapses_and_the_next_run_takes_over(redis: Redis) -> None:
    crashed = RunLock(redis, lock_token("run-a", 1), lease=LEASE)
    assert await crashed.acquire(wait=0)  # and never renews, as if killed
    began = time.monotonic()
    successor = RunLock(redis, lock_token("run-b", 1), lease=LEASE)
    assert await successor.acquire(wait=LEASE + 1, poll=0.05)
    assert LEASE * 0.5 < time.monotonic() - began < LEASE + 1
    assert await redis.get(RUN_LOCK_KEY) == lock_token("run-b", 1).encode()


async def test_a_retry_of_the_same_run_does_not_inherit_the_old_attempts_lock(
    redis: Redis,
) -> None:
    assert await RunLock(redis, lock_token("run-a", 1), lease=LEASE).acquire(wait=0)
    retry = RunLock(redis, lock_token("run-a", 2), lease=LEASE)
    assert not await retry.acquire(wait=0)
    assert retry.holder == "run-a"


async def test_a_holder_that_loses_its_lease_is_told(redis: Redis) -> None:
    lock = RunLock(redis, lock_token("run-a", 1), lease=LEASE)
    assert await lock.acquire(wait=0)
    async with lock.kept() as lost:
        await redis.set(RUN_LOCK_KEY, lock_token("run-b", 1))
        await asyncio.wait_for(lost.wait(), timeout=LEASE * 2)
    # Releasing never removes a lock that is no longer ours.
    assert await redis.get(RUN_LOCK_KEY) == lock_token("run-b", 1).encode()
