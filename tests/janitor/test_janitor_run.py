"""``Janitor.run``: the run as a job sees it, with the lock and arq's retries around it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, create_pool
from support.buckets import put_objects, snapshot
from support.folders import FixedClock, folder

from artifacts_janitor.metrics import JanitorMetrics
from artifacts_janitor.run_lock import RunLock
from artifacts_janitor.settings import JanitorSettings
from artifacts_janitor.worker import Janitor, arq_redis_settings
from artifacts_shared.cleanup_queue import lock_token, request_cleanup
from artifacts_shared.cleanup_result import RunOutcome
from artifacts_shared.s3 import S3Client


@pytest.fixture
async def janitor(
    s3: S3Client, janitor_settings: JanitorSettings, clock: FixedClock
) -> AsyncIterator[Janitor]:
    pool: ArqRedis = await create_pool(arq_redis_settings(janitor_settings))
    try:
        yield Janitor(
            settings=janitor_settings, s3=s3, redis=pool, clock=clock, metrics=JanitorMetrics()
        )
    finally:
        await pool.aclose()


async def test_a_run_gives_up_after_a_lease_while_another_run_holds_the_lock(
    janitor: Janitor, s3: S3Client, janitor_settings: JanitorSettings
) -> None:
    _, objects = folder("g", "job-1", expired_at=b"1000")
    await put_objects(s3, janitor_settings.phfs_bucket, objects)
    other = RunLock(janitor.redis, lock_token("run-other", 1), lease=2)
    assert await other.acquire(wait=0)
    async with other.kept():
        result = await janitor.run("run-late")

    assert (result.outcome, result.note) == (RunOutcome.SKIPPED, "run run-other holds the run lock")
    assert len(await snapshot(s3, janitor_settings.phfs_bucket)) == len(objects)


async def test_an_arq_retry_of_a_run_that_was_superseded_does_nothing(
    janitor: Janitor, s3: S3Client, janitor_settings: JanitorSettings
) -> None:
    _, objects = folder("g", "job-1", expired_at=b"1000")
    await put_objects(s3, janitor_settings.phfs_bucket, objects)
    newer = await request_cleanup(janitor.redis)

    retried = await janitor.run("cleanup-killed-long-ago", attempt=2)
    resumed = await janitor.run(newer, attempt=2)

    assert (retried.outcome, retried.note) == (RunOutcome.SKIPPED, "superseded by a newer run")
    assert (resumed.outcome, resumed.folders_deleted) == (RunOutcome.COMPLETED, 1)
