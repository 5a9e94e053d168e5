"""The cleanup-queue contract on the real Redis, without a worker: requests and statuses.

What a worker does with the runs is tested with the janitor (tests/janitor/test_worker.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from artifacts_shared.cleanup_queue import (
    CLEANUP_QUEUE,
    CURRENT_RUN_KEY,
    CleanupState,
    cleanup_status,
    current_run_id,
    request_cleanup,
)
from artifacts_shared.redis import CLEANUP_FUNCTION
from artifacts_shared.settings import RedisSettings as OurRedisSettings


@pytest.fixture
async def pool(redis_settings: OurRedisSettings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_settings.redis_url))
    try:
        yield pool
    finally:
        await pool.aclose()


async def test_simultaneous_requests_enqueue_one_run_and_all_get_its_id(pool: ArqRedis) -> None:
    ids = await asyncio.gather(*(request_cleanup(pool) for _ in range(10)))

    assert len(set(ids)) == 1
    assert await current_run_id(pool) == ids[0]
    queued = await pool.queued_jobs(queue_name=CLEANUP_QUEUE)
    assert [(job.job_id, job.function) for job in queued] == [(ids[0], CLEANUP_FUNCTION)]
    status = await cleanup_status(pool, ids[0])
    assert (status.state, status.result, status.error) == (CleanupState.QUEUED, None, None)
    assert status.enqueued_at is not None


async def test_a_run_whose_job_is_gone_is_replaced_by_the_next_request(pool: ArqRedis) -> None:
    first = await request_cleanup(pool)
    # arq forgets a job nobody started within a day; the slot must not keep pointing at it.
    await pool.delete(f"arq:job:{first}")

    second = await request_cleanup(pool)

    assert second != first
    assert await pool.get(CURRENT_RUN_KEY) == second.encode()


@pytest.mark.parametrize("run_id", ["cleanup-20250101T000000Z-00000000", "x" * 300, "a b", ""])
async def test_an_unknown_or_malformed_id_is_not_found(pool: ArqRedis, run_id: str) -> None:
    assert (await cleanup_status(pool, run_id)).state is CleanupState.NOT_FOUND
